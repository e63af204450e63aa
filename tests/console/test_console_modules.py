"""The console's arithmetic, run in Chromium: p99 from Prometheus buckets, webhook retry state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from trunkline import console
from trunkline.outbox.schedule import RETRY_DELAYS_SECONDS


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    """A page at the console (served alone, without an API), for importing its modules."""
    app = web.Application()
    console.add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        page = await browser.new_page()
        await page.goto(f"http://127.0.0.1:{runner.addresses[0][1]}/console/")
        yield page
    finally:
        await runner.cleanup()


async def run(page: Any, module: str, expression: str) -> Any:
    return await page.evaluate(
        f"async () => {{ const m = await import('/console/js/{module}'); return {expression}; }}"
    )


async def test_p99_interpolates_within_the_bucket_of_the_gain(page: Any) -> None:
    before = [[0.005, 10], [0.01, 10], [0.025, 10], [None, 10]]
    # 100 new observations: 90 under 5 ms, 9 in (5, 10] ms, 1 in (10, 25] ms.
    after = [[0.005, 100], [0.01, 109], [0.025, 110], [None, 110]]
    p99 = await run(
        page, "charts.js", f"m.quantile(0.99, {before}, {after})".replace("None", "null")
    )
    assert p99 == pytest.approx(0.01)
    p50 = await run(
        page, "charts.js", f"m.quantile(0.5, {before}, {after})".replace("None", "null")
    )
    assert p50 == pytest.approx(0.005 * 50 / 90)
    unchanged = await run(
        page, "charts.js", f"m.quantile(0.99, {after}, {after})".replace("None", "null")
    )
    assert unchanged is None  # nothing observed between the samples: no value, not zero
    beyond = [[0.005, 100], [0.01, 100], [0.025, 100], [None, 110]]
    assert await run(
        page, "charts.js", f"m.quantile(0.99, {before}, {beyond})".replace("None", "null")
    ) == pytest.approx(0.025)  # past the last finite bound: that bound


def attempt(status: int | None, at: str) -> dict[str, Any]:
    return {"response_status": status, "created_at": at, "error_detail": None}


async def test_retry_state_follows_the_outbox_schedule(page: Any) -> None:
    async def state(attempts: list[dict[str, Any]]) -> dict[str, str]:
        return await run(page, "webhooks.js", f"m.retryState({attempts})".replace("None", "null"))

    first = attempt(503, "2026-01-01T10:00:00+00:00")
    retrying = await state([first])
    assert retrying["state"] == "retrying" and "attempt 2 of 8" in retrying["text"]
    assert (await state([first, attempt(200, "2026-01-01T10:00:05+00:00")]))["state"] == "delivered"
    gone = await state([attempt(410, "2026-01-01T10:00:00+00:00")])
    assert gone["state"] == "failed" and "410" in gone["text"]
    exhausted = await state([attempt(None, f"2026-01-01T1{i}:00:00+00:00") for i in range(8)])
    assert exhausted["state"] == "failed" and "8 attempts" in exhausted["text"]
    assert await run(page, "webhooks.js", "m.MAX_ATTEMPTS") == 8
    delays = await run(page, "webhooks.js", "m.RETRY_DELAYS_SECONDS")
    assert delays == list(RETRY_DELAYS_SECONDS)  # the console reads the schedule the outbox keeps
