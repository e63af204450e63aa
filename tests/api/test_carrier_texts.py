"""Carrier SMS/MMS webhooks (signed with real keys) become texts seen through the API and SDK."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import yarl
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from inkbox import Inkbox

from tests.api.conftest import ApiWorld
from trunkline.messaging.carrier_formats import twilio_signature

TELNYX_KEY = Ed25519PrivateKey.generate()
TELNYX_PUBLIC = base64.b64encode(
    TELNYX_KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
).decode()
TWILIO_TOKEN = "twilio-auth-token-for-tests"
ALICE = "+14155550101"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(100)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "telnyx_public_key": TELNYX_PUBLIC,
        "twilio_auth_token": TWILIO_TOKEN,
        "allow_private_targets": True,
    }


@pytest.fixture
async def media_server() -> AsyncIterator[str]:
    async def png(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/media/photo.png")

    async def exe(request: web.Request) -> web.Response:
        return web.Response(body=b"MZ", content_type="application/x-msdownload")

    async def huge(request: web.Request) -> web.Response:
        return web.Response(body=bytes(6 * 1024 * 1024), content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/media/photo.png", png)
    app.router.add_get("/media/redirect", moved)
    app.router.add_get("/media/tool.exe", exe)
    app.router.add_get("/media/huge.jpg", huge)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def telnyx_event(
    to: str, text: str | None, message_id: str, media: list[dict[str, Any]] | None = None
) -> bytes:
    payload = {
        "id": message_id,
        "direction": "inbound",
        "type": "MMS" if media else "SMS",
        "from": {"phone_number": ALICE},
        "to": [{"phone_number": to}],
        "text": text,
        "media": media or [],
    }
    return json.dumps(
        {"data": {"event_type": "message.received", "id": "ev-" + message_id, "payload": payload}}
    ).encode()


def telnyx_headers(body: bytes, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    signature = TELNYX_KEY.sign(stamp.encode() + b"|" + body)
    return {
        "telnyx-timestamp": stamp,
        "telnyx-signature-ed25519": base64.b64encode(signature).decode(),
        "Content-Type": "application/json",
    }


async def post_raw(api: ApiWorld, path: str, data: Any, headers: dict[str, str]) -> tuple[int, str]:
    async with api.session.post(api.base_url + path, data=data, headers=headers) as response:
        return response.status, await response.text()


async def test_telnyx_sms_is_stored_once_and_visible(api: ApiWorld) -> None:
    org = await api.org()
    number = await api.provision(org)
    body = telnyx_event(number["number"], "Hello from Telnyx", "msg-1")
    assert (await post_raw(api, "/carrier/telnyx/messages", body, telnyx_headers(body)))[0] == 200
    assert (await post_raw(api, "/carrier/telnyx/messages", body, telnyx_headers(body)))[0] == 200
    listed = await org.admin.get(f"/numbers/{number['id']}/texts")
    assert [t["text"] for t in listed.body] == ["Hello from Telnyx"]
    assert listed.body[0]["direction"] == "inbound" and listed.body[0]["type"] == "sms"
    events = await api.repository.list_events(org.id)
    assert [e.event_type for e in events] == ["text.received"]
    assert events[0].data["text"] == "Hello from Telnyx"


async def test_carrier_text_with_unstorable_characters_is_kept_with_replacements(
    api: ApiWorld,
) -> None:
    org = await api.org()
    number = await api.provision(org)
    body = telnyx_event(number["number"], "Hi\u0000 there \ud800!", "msg-nul")
    status, answer = await post_raw(api, "/carrier/telnyx/messages", body, telnyx_headers(body))
    assert status == 200, answer
    listed = await org.admin.get(f"/numbers/{number['id']}/texts")
    assert [t["text"] for t in listed.body] == ["Hi\ufffd there \ufffd!"]
    url = api.settings.api.effective_public_url + "/carrier/twilio/messages"
    fields = twilio_form(number["number"], "SM-nul", "twilio\u0000text")
    headers = {"X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, url, fields)}
    status, answer = await post_raw(
        api, "/carrier/twilio/messages", aiohttp.FormData(fields), headers
    )
    assert status == 200, answer
    listed = await org.admin.get(f"/numbers/{number['id']}/texts")
    assert sorted(t["text"] for t in listed.body) == ["Hi\ufffd there \ufffd!", "twilio\ufffdtext"]


@pytest.mark.parametrize(
    "spoil",
    [
        lambda h, b: ({**h, "telnyx-signature-ed25519": base64.b64encode(bytes(64)).decode()}, b),
        lambda h, b: (h, b.replace(b"Hi", b"Yo")),
        lambda h, b: ({k: v for k, v in h.items() if k != "telnyx-timestamp"}, b),
        lambda h, b: (telnyx_headers(b, int(time.time()) - 600), b),  # a replay, too late
        lambda h, b: ({**h, "telnyx-signature-ed25519": "not base64!"}, b),
    ],
)
async def test_bad_telnyx_signatures_and_replays_store_nothing(api: ApiWorld, spoil: Any) -> None:
    org = await api.org()
    number = await api.provision(org)
    body = telnyx_event(number["number"], "Hi", "msg-2")
    headers, sent = spoil(telnyx_headers(body), body)
    status, _ = await post_raw(api, "/carrier/telnyx/messages", sent, headers)
    assert status == 403
    assert (await org.admin.get(f"/numbers/{number['id']}/texts")).body == []
    assert await api.repository.list_events(org.id) == []


async def test_telnyx_mms_media_is_fetched_and_served_by_expiring_links(
    api: ApiWorld, media_server: str
) -> None:
    org = await api.org()
    number = await api.provision(org)
    media = [{"url": f"{media_server}/media/redirect", "content_type": "image/png"}]
    body = telnyx_event(number["number"], None, "msg-3", media)
    assert (await post_raw(api, "/carrier/telnyx/messages", body, telnyx_headers(body)))[0] == 200
    (text,) = (await org.admin.get(f"/numbers/{number['id']}/texts")).body
    assert text["type"] == "mms" and text["text"] is None
    (item,) = text["media"]
    assert (item["content_type"], item["size"]) == ("image/png", len(PNG))
    link = urlsplit(item["url"])
    local = f"{api.base_url}{link.path}?{link.query}"
    async with api.session.get(local) as response:
        assert response.status == 200 and await response.read() == PNG
    tampered = local.replace("signature=", "signature=0")
    async with api.session.get(tampered) as response:
        assert response.status == 403
    expired = api.blob_store.presigned_url(
        item["url"].split("/media/", 1)[1].split("?")[0], 60, now=time.time() - 3600
    )
    parts = urlsplit(expired)
    async with api.session.get(f"{api.base_url}{parts.path}?{parts.query}") as response:
        assert response.status == 403 and "expired" in (await response.json())["detail"]


@pytest.mark.parametrize("signature", ["%C3%A9" * 8, "%00abc", "%FF%FE"])
async def test_media_links_with_non_ascii_signatures_are_403(api: ApiWorld, signature: str) -> None:
    store = api.blob_store
    await store.put("media/probe.png", b"\x89PNG", "image/png")
    parts = urlsplit(store.presigned_url("media/probe.png", 60))
    async with api.session.get(f"{api.base_url}{parts.path}?{parts.query}") as response:
        assert response.status == 200
    expires = parts.query.split("expires=", 1)[1].split("&", 1)[0]
    forged = f"{api.base_url}{parts.path}?expires={expires}&signature={signature}"
    async with api.session.get(yarl.URL(forged, encoded=True)) as response:
        assert response.status == 403, await response.text()
        assert "signature" in (await response.json())["detail"]


@pytest.mark.parametrize("path", ["/media/tool.exe", "/media/huge.jpg"])
async def test_unacceptable_media_is_refused(api: ApiWorld, media_server: str, path: str) -> None:
    org = await api.org()
    number = await api.provision(org)
    body = telnyx_event(number["number"], None, "msg-4", [{"url": media_server + path}])
    status, _ = await post_raw(api, "/carrier/telnyx/messages", body, telnyx_headers(body))
    assert status == 422
    assert (await org.admin.get(f"/numbers/{number['id']}/texts")).body == []


def twilio_form(to: str, sid: str, body: str, media: list[str] = ()) -> list[tuple[str, str]]:  # type: ignore[assignment]
    fields = [("MessageSid", sid), ("From", ALICE), ("To", to), ("Body", body)]
    fields.append(("NumMedia", str(len(media))))
    for index, url in enumerate(media):
        fields += [(f"MediaUrl{index}", url), (f"MediaContentType{index}", "image/png")]
    return fields


async def test_twilio_sms_and_mms_arrive_and_the_sdk_reads_them(
    api: ApiWorld, media_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    org = await api.org()
    number = await api.provision(org)
    url = api.settings.api.effective_public_url + "/carrier/twilio/messages"
    for sid, text, media in (
        ("SM1", "First via Twilio", []),
        ("SM2", "", [f"{media_server}/media/photo.png"]),
    ):
        fields = twilio_form(number["number"], sid, text, media)
        headers = {"X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, url, fields)}
        status, reply = await post_raw(
            api, "/carrier/twilio/messages", aiohttp.FormData(fields), headers
        )
        assert status == 200 and "<Response>" in reply
    bad = twilio_form(number["number"], "SM3", "forged")
    status, _ = await post_raw(
        api,
        "/carrier/twilio/messages",
        aiohttp.FormData(bad),
        {"X-Twilio-Signature": twilio_signature("wrong", url, bad)},
    )
    assert status == 403

    for name in ("INKBOX_API_KEY", "INKBOX_BASE_URL", "INKBOX_VAULT_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))

    def read() -> list[Any]:
        with Inkbox(api_key=org.admin_token, base_url=api.base_url) as client:
            return list(client.texts.list(number["id"]))

    texts = await asyncio.to_thread(read)
    assert [(t.type, t.text) for t in texts] == [("mms", None), ("sms", "First via Twilio")]


@pytest.mark.settings(twilio_auth_token="", telnyx_public_key="")
async def test_unconfigured_carriers_are_refused(api: ApiWorld) -> None:
    body = telnyx_event("+15550100001", "x", "m")
    assert (await post_raw(api, "/carrier/telnyx/messages", body, telnyx_headers(body)))[0] == 403
    assert (await post_raw(api, "/carrier/twilio/messages", b"", {}))[0] == 403


async def test_telnyx_delivery_reports_update_outbound_texts(api: ApiWorld) -> None:
    org = await api.org()
    number = await api.provision(org)
    stored = await api.repository.get_number(number["id"])
    assert stored is not None
    now = time.time()
    from trunkline.storage.models import Text, new_id, utcnow

    sent = Text(
        id=new_id(),
        organization_id=org.id,
        phone_number_id=stored.id,
        direction="outbound",
        local_phone_number=stored.number,
        remote_phone_number=ALICE,
        text="hello",
        type="sms",
        media=None,
        status="active",
        is_read=True,
        created_at=utcnow(),
        updated_at=utcnow(),
        carrier_message_id="telnyx:out-1",
        delivery_status="queued",
    )
    await api.repository.insert_text(sent)
    report = {
        "data": {
            "event_type": "message.finalized",
            "id": "ev-9",
            "payload": {
                "id": "out-1",
                "from": {"phone_number": stored.number},
                "to": [{"phone_number": ALICE, "status": "delivered"}],
            },
        }
    }
    body = json.dumps(report).encode()
    status, _ = await post_raw(
        api, "/carrier/telnyx/messages", body, telnyx_headers(body, int(now))
    )
    assert status == 200
    updated = await api.repository.get_text(stored.id, sent.id)
    assert updated is not None and updated.delivery_status == "delivered"
