"""Strings no backend can store are refused up front: 422 for bodies and queries, 401 for tokens.

A JSON escape can carry an unpaired UTF-16 surrogate (``"\\ud800"``), which has
no UTF-8 form, and ``\\u0000``, which PostgreSQL text cannot hold. Both are
refused before any handler or storage sees them, on every backend. Token
headers with bytes outside printable ASCII name no token: 401.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.api.conftest import API, ApiWorld, Org

HOOK = "https://hooks.example.com/trunkline"
SURROGATE = "\ud800"
NUL = "\u0000"
REFUSED = "must not contain NUL characters or unpaired UTF-16 surrogates"


async def _org_with_number(api: ApiWorld) -> tuple[Org, dict[str, Any]]:
    org = await api.org()
    number = await api.provision(org, "sales")
    return org, number


def _bodies(org: Org, number: dict[str, Any], bad: str) -> list[tuple[str, str, dict[str, Any]]]:
    sales = org.identities["sales"].id
    return [
        ("POST", "/numbers", {"agent_handle": "sales" + bad, "type": "local"}),
        ("PATCH", f"/numbers/{number['id']}", {"friendly_name": "front desk" + bad}),
        ("POST", f"/numbers/{number['id']}/texts", {"to": "+14155550123", "text": "hi" + bad}),
        (
            "PUT",
            "/incoming-call-action",
            {
                "incoming_call_action": "auto_accept",
                "agent_identity_id": sales,
                "client_websocket_url": "wss://agent.example.com/ws" + bad,
            },
        ),
        (
            "POST",
            "/../webhooks/subscriptions",
            {
                "url": HOOK,
                "event_types": ["call.ended"],
                "agent_identity_id": sales,
                "auth_token": "secret" + bad,
            },
        ),
        ("POST", "/numbers", {"agent_handle": "sales", "type": "local", "state" + bad: "CA"}),
        (
            "POST",
            "/numbers/register",
            {
                "phone_number": "+14155550100",
                "provider": "sip_trunk",
                "agent_id": sales,
                "provider_config": {"trunk_address": "sip.example.com" + bad},
            },
        ),
    ]


@pytest.mark.parametrize("bad", [SURROGATE, NUL], ids=["surrogate", "nul"])
async def test_body_strings_that_cannot_be_stored_are_422(api: ApiWorld, bad: str) -> None:
    org, number = await _org_with_number(api)
    for method, path, body in _bodies(org, number, bad):
        answer = await org.admin.call(method, path, json_body=body)
        assert answer.status == 422, (method, path, answer)
        assert REFUSED in answer.body["detail"], (method, path, answer)
    # nothing was stored on the way
    stored = await api.repository.get_number(number["id"])
    assert stored is not None and stored.friendly_name is None
    listed = await org.admin.get("/../webhooks/subscriptions")
    assert (listed.status, listed.body) == (200, {"subscriptions": []})


async def test_the_refusal_names_the_field(api: ApiWorld) -> None:
    org, number = await _org_with_number(api)
    answer = await org.admin.post(
        f"/numbers/{number['id']}/texts", {"to": "+14155550123", "text": "a" + SURROGATE}
    )
    assert answer.body == {"detail": f"text: {REFUSED}"}
    nested = await org.admin.post(
        "/../webhooks/subscriptions",
        {"url": HOOK, "event_types": ["call.ended", "x" + NUL], "agent_identity_id": "x"},
    )
    assert nested.body == {"detail": f"event_types[1]: {REFUSED}"}


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/numbers/{number}/texts/search", "q"),
        ("/numbers/{number}/search", "q"),
        ("/../webhooks/subscriptions", "url"),
        ("/../webhooks/deliveries", "event_type"),
    ],
)
async def test_query_strings_with_nul_are_422(api: ApiWorld, path: str, name: str) -> None:
    org, number = await _org_with_number(api)
    answer = await org.admin.get(
        path.format(number=number["id"]), params={name: "hello" + NUL + "world"}
    )
    assert answer.status == 422, answer
    assert answer.body == {"detail": f"{name}: {REFUSED}"}


async def test_valid_text_still_goes_through(api: ApiWorld) -> None:
    org, number = await _org_with_number(api)
    answer = await org.admin.patch(
        f"/numbers/{number['id']}", {"friendly_name": "Ünïcode ✓ 𝄞 desk"}
    )
    assert answer.status == 200, answer
    assert answer.body["friendly_name"] == "Ünïcode ✓ 𝄞 desk"


async def _raw_request(api: ApiWorld, path: str, header_lines: list[bytes]) -> tuple[int, bytes]:
    """One HTTP/1.1 request written byte for byte, so headers can carry any octets."""
    split = urlsplit(api.base_url)
    assert split.hostname is not None and split.port is not None
    reader, writer = await asyncio.open_connection(split.hostname, split.port)
    try:
        head = [f"GET {API}{path} HTTP/1.1".encode(), f"Host: {split.netloc}".encode()]
        writer.write(b"\r\n".join([*head, *header_lines, b"Connection: close", b"", b""]))
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
        await writer.wait_closed()
    status_line, _, rest = response.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize(
    "header",
    [
        b"X-API-Key: tl_\xff\xfe\xfd",
        b"X-Service-Token: \xc3\xa9t\xc3\xa9",
        b"X-API-Key: tl_\xed\xa0\x80abc",
        b"Authorization: Bearer \xff\xfe",
    ],
)
async def test_token_headers_with_non_ascii_bytes_are_401(api: ApiWorld, header: bytes) -> None:
    await api.org()
    status, body = await _raw_request(api, "/numbers", [header])
    assert status == 401, body
    assert b'"detail"' in body


async def test_a_valid_token_still_authenticates_over_a_raw_request(api: ApiWorld) -> None:
    org = await api.org()
    status, body = await _raw_request(api, "/numbers", [f"X-API-Key: {org.admin_token}".encode()])
    assert status == 200, body
