"""Authentication and the error contract: JSON details, exact statuses, never a 500 for bad input."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator

import pytest

from tests.api.conftest import ApiWorld


async def test_missing_token_is_401(api: ApiWorld) -> None:
    answer = await api.anonymous.get("/numbers")
    assert answer.status == 401
    assert "X-Service-Token" in answer.body["detail"]
    assert answer.headers["Content-Type"].startswith("application/json")


async def test_unknown_token_is_401(api: ApiWorld) -> None:
    await api.org()
    answer = await api.client("tl_not-a-real-token").get("/numbers")
    assert (answer.status, answer.body) == (401, {"detail": "Invalid service token"})
    huge = await api.client("x" * 5000).get("/numbers")
    assert huge.status == 401


@pytest.mark.parametrize("header", ["X-Service-Token", "X-API-Key", "x-api-key"])
async def test_either_token_header_is_accepted(api: ApiWorld, header: str) -> None:
    org = await api.org()
    answer = await api.anonymous.get("/numbers", headers={header: org.admin_token})
    assert answer.status == 200, answer


async def test_auth_is_checked_before_validation(api: ApiWorld) -> None:
    answer = await api.anonymous.post("/numbers", {"nonsense": True})
    assert answer.status == 401


async def test_unknown_route_is_json_404(api: ApiWorld) -> None:
    org = await api.org()
    for path in ("/nothing-here", "/numbers/x/y/z/w"):
        answer = await org.admin.get(path)
        assert (answer.status, answer.body) == (404, {"detail": "Not Found"}), path
    outside = await api.session.get(f"{api.base_url}/not-an-api-path")
    assert outside.status == 404
    assert await outside.json() == {"detail": "Not Found"}


async def test_wrong_method_is_json_405_with_allow(api: ApiWorld) -> None:
    org = await api.org()
    answer = await org.admin.call("PUT", "/numbers")
    assert (answer.status, answer.body) == (405, {"detail": "Method Not Allowed"})
    assert "GET" in answer.headers["Allow"] and "POST" in answer.headers["Allow"]


async def test_body_over_the_limit_is_413(api: ApiWorld) -> None:
    org = await api.org()
    big = json.dumps({"agent_handle": "sales", "pad": "x" * 100_000}).encode()
    answer = await org.admin.call(
        "POST", "/numbers", data=big, headers={"Content-Type": "application/json"}
    )
    assert answer.status == 413
    assert "too large" in answer.body["detail"]
    huge = io.BytesIO(b"{" + b" " * (2 * 1024 * 1024) + b"}")
    answer = await org.admin.call("POST", "/numbers", data=huge)
    assert answer.status == 413
    assert "detail" in answer.body


async def test_chunked_body_over_the_limit_is_413(api: ApiWorld) -> None:
    org = await api.org()

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"agent_handle": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    answer = await org.admin.call("POST", "/numbers", data=chunks())
    assert answer.status == 413
    assert "detail" in answer.body


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "body is required"),
        (b"{not json", "body: invalid JSON"),
        (b"[1, 2]", "body: expected a JSON object"),
        (b'"text"', "body: expected a JSON object"),
        (b"\xff\xfe{}", "body: must be UTF-8"),
        (b'{"agent_handle": NaN}', "body: invalid JSON"),
        (b"[" * 100_00 + b"]" * 100_00, "body: invalid JSON"),
    ],
)
async def test_bad_json_bodies_are_422(api: ApiWorld, raw: bytes, message: str) -> None:
    org = await api.org()
    answer = await org.admin.call(
        "POST", "/numbers", data=raw, headers={"Content-Type": "application/json"}
    )
    assert answer.status == 422, answer
    assert answer.body["detail"].startswith(message)


async def test_nested_unknown_field_is_named_with_its_path(api: ApiWorld) -> None:
    org = await api.org()
    answer = await org.admin.post(
        "/numbers/register",
        {
            "phone_number": "+15739693824",
            "provider": "twilio",
            "agent_id": "sales",
            "provider_config": {"trunk_address": "sip.example.com", "port": 5060},
        },
    )
    assert (answer.status, answer.body) == (
        422,
        {"detail": "provider_config.port: unknown field"},
    )


async def test_malformed_path_ids_are_404_everywhere(api: ApiWorld) -> None:
    org = await api.org()
    number = await api.provision(org)
    for method, path in [
        ("GET", "/numbers/123"),
        ("PATCH", "/numbers/123"),
        ("DELETE", "/numbers/123"),
        ("GET", "/calls/zzz"),
        ("GET", "/calls/zzz/transcripts"),
        ("POST", "/calls/zzz/hangup"),
        ("GET", "/numbers/123/calls"),
        ("GET", f"/numbers/{number['id']}/calls/zzz"),
        ("GET", "/numbers/123/texts"),
        ("GET", f"/numbers/{number['id']}/texts/zzz"),
        ("GET", "/numbers/%00/search?q=a"),
    ]:
        answer = await org.admin.call(method, path, json_body={} if method == "PATCH" else None)
        assert answer.status == 404, (method, path, answer)
        assert isinstance(answer.body["detail"], str)


async def test_openapi_document_needs_no_token(api: ApiWorld) -> None:
    answer = await api.anonymous.get("/openapi.json")
    assert answer.status == 200
    assert answer.body["openapi"].startswith("3.1")


async def test_healthz_still_served(api: ApiWorld) -> None:
    async with api.session.get(f"{api.base_url}/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}
