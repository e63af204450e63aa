"""The web console in a real headless Chromium, against a real trunkline and a real call.

An operator logs in with an API token, sees a SIP call (a carrier on loopback
speaking a piper-voiced sentence to an echoing WebSocket agent) appear among
the live calls, hangs it up from the page, finds it in the history with its
hang-up reason, plays its recording and finds it again by searching the
transcript Whisper made of it. Numbers, texts, webhook deliveries and the
charts are looked at along the way, and a token of another organisation sees
none of it. Screenshots of each view go to ``tests/console/artifacts/<run>/``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from tests.console.conftest import keep_screenshot
from tests.gateway.conftest import EchoAgent, Trunkline
from tests.gateway.sip_peer import CarrierCall
from tests.speech.voice import frames, spoken
from trunkline.crypto import hash_token, new_token
from trunkline.storage.models import Call

SENTENCE = "Good morning, I would like to book a table for four people."
SEARCHED = "table"
TEXTED = "+14155550188"
README_SCREENSHOTS = {  # this run's name -> the committed file the README links
    "02-live-call": "live-calls.png",
    "03-charts": "charts.png",
    "05-transcript-search": "history-recording-transcript.png",
    "08-webhook-deliveries": "webhook-deliveries.png",
}


@pytest.fixture
def trunkline_overrides() -> dict[str, Any]:
    return {}  # the defaults: Whisper transcribes the call


@pytest.fixture
async def failing_receiver() -> AsyncIterator[str]:
    """A webhook receiver that answers 503 to everything, so deliveries go to retry."""
    hits: list[str] = []

    async def refuse(request: web.Request) -> web.Response:
        hits.append(request.headers.get("X-Inkbox-Event", ""))
        return web.Response(status=503, text="down for maintenance")

    app = web.Application()
    app.router.add_post("/hooks", refuse)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}/hooks"
    finally:
        await runner.cleanup()


async def new_org_tokens(trunkline: Trunkline, name: str) -> tuple[str, str]:
    """An organisation with a ``sales`` identity: (admin token, sales identity token)."""
    repository = trunkline.services.repository
    organization = await repository.create_organization(name)
    identity = await repository.create_identity(organization.id, "sales", None)
    admin, sales = new_token(), new_token()
    await repository.create_token(organization.id, None, hash_token(admin))
    await repository.create_token(organization.id, identity.id, hash_token(sales))
    return admin, sales


async def api_json(
    http: aiohttp.ClientSession, method: str, url: str, body: dict[str, Any], status: int
) -> Any:
    async with http.request(method, url, json=body) as response:
        answer = await response.json()
        assert response.status == status, answer
        return answer


async def settled_call(trunkline: Trunkline, call_id: str) -> Call:
    """The call once its recording is published and its caller's words are transcribed."""
    repository = trunkline.services.repository
    for _ in range(600):
        call = await repository.get_call(call_id)
        segments = await repository.list_transcripts(call_id)
        remote = " ".join(s.text.lower() for s in segments if s.party == "remote")
        if call is not None and call.recording_key and SEARCHED in remote:
            return call
        await asyncio.sleep(0.1)
    raise AssertionError(f"recording or transcript missing: {call!r} {segments!r}")


@pytest.mark.timeout(300)  # a real call, Whisper and a browser on a shared, busy machine
async def test_operator_watches_hangs_up_plays_and_searches_a_call(
    trunkline: Trunkline,
    echo_agent: EchoAgent,
    failing_receiver: str,
    browser: Any,
    artifacts: Path,
) -> None:
    from playwright.async_api import expect

    base = f"http://127.0.0.1:{trunkline.http_port}"
    token, sales_token = await new_org_tokens(trunkline, "acme")
    async with aiohttp.ClientSession(headers={"X-API-Key": token}) as http:
        api = f"{base}/api/v1/phone"
        number = await api_json(
            http, "POST", f"{api}/numbers", {"agent_handle": "sales", "type": "local"}, 201
        )
        await api_json(
            http,
            "PATCH",
            f"{api}/numbers/{number['id']}",
            {"incoming_call_action": "auto_accept", "client_websocket_url": echo_agent.url},
            200,
        )
        await api_json(
            http,
            "POST",
            f"{api}/numbers/{number['id']}/texts",
            {"to": TEXTED, "text": "Your table for four is booked."},
            201,
        )
        await api_json(
            http,
            "POST",
            f"{base}/api/v1/webhooks/subscriptions",
            {
                "url": failing_receiver,
                "event_types": ["call.started", "call.ended"],
                "phone_number_id": number["id"],
            },
            201,
        )

    page = await browser.new_page()
    requested: list[str] = []
    problems: list[str] = []
    refused: set[tuple[int, str]] = set()
    page.on("request", lambda request: requested.append(request.url))
    page.on(
        "response",
        lambda r: refused.add((r.status, URL(r.url).path)) if r.status >= 400 else None,
    )
    page.on(
        "console",
        lambda m: (
            problems.append(m.text)
            if m.type in ("error", "warning") and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(str(error)))

    async def snap(name: str) -> None:
        taken = artifacts / f"{name}.png"
        await page.screenshot(path=str(taken))
        if name in README_SCREENSHOTS:
            keep_screenshot(taken, README_SCREENSHOTS[name])

    # Log in: a wrong token is refused in the page, the right one opens the live view.
    response = await page.goto(f"{base}/console")
    assert (
        response is not None and "default-src 'self'" in response.headers["content-security-policy"]
    )
    await page.fill("#token", "tl_not-a-real-token")
    await page.click("#login-form button")
    await expect(page.locator("#login-error")).to_have_text("Invalid service token")
    await snap("01-login-refused")
    await page.fill("#token", token)
    await page.click("#login-form button")
    await expect(page.locator("#live-view")).to_be_visible()
    await expect(page.locator("#live-empty")).to_be_visible()

    # A carrier calls the number and speaks; the call appears among the live calls.
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await carrier.invite(number["number"])).status == 200
        speaking = asyncio.create_task(
            carrier.send_audio(frames(spoken(SENTENCE), lead_ms=300, tail_ms=1500))
        )
        rows = page.locator("#live-calls tbody tr")
        await expect(rows).to_have_count(1)
        await expect(rows.first.locator("td").nth(4)).to_have_text("answered")
        await expect(rows.first.locator("td").nth(2)).to_have_text("+14155550123")
        call_id = await rows.first.get_attribute("data-call-id")
        assert call_id is not None
        await snap("02-live-call")

        await page.click("#tabs button[data-view=charts]")
        await expect(page.locator("#value-active")).to_have_text("1")
        await expect(page.locator("#value-fps")).not_to_have_text("—", timeout=20_000)
        await expect(page.locator("#value-fps")).not_to_have_text("0", timeout=20_000)
        await speaking
        await snap("03-charts")

        await page.click("#tabs button[data-view=live]")
        bye = asyncio.create_task(carrier.expect_request("BYE", wait_seconds=20))
        await page.click(f"#live-calls tr[data-call-id='{call_id}'] button.hangup")
        await bye  # trunkline sent the carrier a BYE, and the carrier answered it
        await expect(rows).to_have_count(0, timeout=30_000)  # once the call's end is stored
        await expect(page.locator("#live-empty")).to_be_visible()
    finally:
        carrier.close()

    # History: the call with its status and reason; its recording plays beside its transcript.
    await settled_call(trunkline, call_id)
    await page.click("#tabs button[data-view=history]")
    row = page.locator(f"#history-calls tr[data-call-id='{call_id}']")
    await expect(row.locator("td.status")).to_have_text("completed")
    await expect(row.locator("td.reason")).to_have_text("local")
    await row.click()
    await expect(page.locator("#call-detail")).to_be_visible()
    audio = page.locator("#recording")
    await expect(audio).to_have_count(1)
    await page.wait_for_function(
        "() => { const a = document.querySelector('#recording');"
        " return a && a.readyState >= 1 && a.duration > 1; }"
    )
    duration = await audio.evaluate("a => a.duration")
    assert 1.0 < duration < 30.0
    await audio.evaluate("a => a.play()")
    await page.wait_for_function("() => document.querySelector('#recording').currentTime > 0.2")
    await audio.evaluate("a => a.pause()")
    await expect(page.locator("#transcript")).to_contain_text(SEARCHED, ignore_case=True)
    await snap("04-history-recording-transcript")

    # Search: the transcript is found by a word in it, and opens the call with the word marked.
    await page.fill("#search", SEARCHED)
    await page.click("#search-form button")
    hits = page.locator("#search-results li.search-hit")
    await expect(hits.first).to_contain_text(SEARCHED, ignore_case=True)
    assert await hits.first.get_attribute("data-call-id") == call_id
    await hits.first.click()
    await expect(page.locator("#transcript mark").first).to_have_text(SEARCHED, ignore_case=True)
    await snap("05-transcript-search")

    # Numbers, texts and webhook deliveries.
    await page.click("#tabs button[data-view=numbers]")
    number_row = page.locator(f"#numbers tr[data-number-id='{number['id']}']")
    await expect(number_row.locator("td.action")).to_have_text("auto_accept")
    await expect(number_row).to_contain_text(echo_agent.url)
    await snap("06-numbers")
    await page.click("#tabs button[data-view=texts]")
    conversation = page.locator(f"#conversations tr[data-remote='{TEXTED}']")
    await conversation.click()
    await expect(page.locator("#messages")).to_contain_text("Your table for four is booked.")
    await snap("07-texts")
    await page.click("#tabs button[data-view=webhooks]")
    retry = page.locator("#deliveries td.retry").first
    await expect(retry).to_contain_text("retrying", timeout=20_000)
    await expect(page.locator("#deliveries")).to_contain_text("HTTP 503")
    await snap("08-webhook-deliveries")

    assert not any(token in url for url in requested), "the token appeared in a URL"
    assert problems == [], problems  # no script error, no Content-Security-Policy violation
    assert refused == {  # the wrong token; the identity has no incoming-call action of its own
        (401, "/api/v1/phone/numbers"),
        (404, "/api/v1/phone/incoming-call-action"),
    }

    # The number's identity sees its call and its deliveries, but no process-wide media figures.
    await page.click("#logout")
    await expect(page.locator("#login-view")).to_be_visible()
    await page.fill("#token", sales_token)
    await page.click("#login-form button")
    await page.click("#tabs button[data-view=history]")
    await expect(page.locator(f"#history-calls tr[data-call-id='{call_id}']")).to_have_count(1)
    await page.click("#tabs button[data-view=webhooks]")
    await expect(page.locator("#deliveries td.retry").first).to_contain_text("retrying")
    await page.click("#tabs button[data-view=charts]")
    await expect(page.locator("#value-active")).to_have_text("0")
    await expect(page.locator("#charts-view figure.media").first).to_be_hidden()
    await expect(page.locator("#charts-note")).to_contain_text("only organisation admin tokens")
    await snap("09-identity-charts")

    # Another organisation's admin sees none of it.
    other, _ = await new_org_tokens(trunkline, "globex")
    await page.click("#logout")
    await expect(page.locator("#login-view")).to_be_visible()
    await page.fill("#token", other)
    await page.click("#login-form button")
    await page.click("#tabs button[data-view=history]")
    await expect(page.locator("#history-view")).to_be_visible()
    await page.wait_for_timeout(500)
    await expect(page.locator("#history-calls tbody tr")).to_have_count(0)
    await page.click("#tabs button[data-view=numbers]")
    await expect(page.locator("#numbers tbody tr")).to_have_count(0)
    stored = await page.evaluate("() => sessionStorage.getItem('trunkline.token')")
    assert stored == other and json.dumps(stored).count(token) == 0
    assert problems == [], problems
