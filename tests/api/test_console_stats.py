"""What the web console reads beyond the Inkbox API: ``GET /calls?live=true`` and
``GET /api/v1/console/stats`` (live-call count; process-wide media figures for admins only)."""

from __future__ import annotations

import pytest

from tests.api.conftest import ApiWorld

STATS = "/api/v1/console/stats"


async def stats(api: ApiWorld, token: str) -> tuple[int, dict[str, object]]:
    async with api.session.get(api.base_url + STATS, headers={"X-API-Key": token}) as response:
        return response.status, await response.json()


async def test_live_filter_keeps_calls_that_have_not_ended(api: ApiWorld) -> None:
    org = await api.org()
    number = await api.provision(org)
    ringing = await api.add_call(number, status="ringing")
    answered = await api.add_call(number, status="answered", talk_seconds=3)
    await api.add_call(number, status="completed")
    await api.add_call(number, status="failed")
    live = await org.admin.get("/calls", params={"live": "true"})
    assert live.status == 200
    assert {c["id"] for c in live.body} == {ringing.id, answered.id}
    everything = await org.admin.get("/calls", params={"live": "false"})
    assert len(everything.body) == 4
    assert (await org.admin.get("/calls", params={"live": "maybe"})).status == 422


async def test_live_calls_of_another_identity_or_organisation_are_not_listed(
    api: ApiWorld,
) -> None:
    acme = await api.org("acme")
    other = await api.org("other")
    sales = await api.provision(acme, "sales")
    support = await api.provision(acme, "support")
    theirs = await api.provision(other, "sales")
    mine = await api.add_call(sales, status="answered")
    await api.add_call(support, status="answered")
    await api.add_call(theirs, status="answered")
    seen = await acme.agents["sales"].get("/calls", params={"live": "true"})
    assert [c["id"] for c in seen.body] == [mine.id]
    status, figures = await stats(api, acme.agent_tokens["sales"])
    assert status == 200 and figures["live_calls"] == 1
    status, figures = await stats(api, acme.admin_token)
    assert figures["live_calls"] == 2 and figures["live_calls_capped"] is False
    status, figures = await stats(api, other.admin_token)
    assert figures["live_calls"] == 1


async def test_media_figures_go_to_admin_tokens_only(api: ApiWorld) -> None:
    org = await api.org()
    status, figures = await stats(api, org.admin_token)
    assert status == 200
    media = figures["media"]
    assert isinstance(media, dict)
    assert set(media) == {
        "frames_to_agent",
        "frames_to_caller",
        "rtp_packets_in",
        "rtp_packets_lost",
        "latency_buckets",
    }
    _, identity = await stats(api, org.agent_tokens["sales"])
    assert identity["media"] is None


@pytest.mark.settings(console_process_metrics=False)
async def test_media_figures_can_be_withheld_from_everyone(api: ApiWorld) -> None:
    org = await api.org()
    _, figures = await stats(api, org.admin_token)
    assert figures["media"] is None and figures["live_calls"] == 0


async def test_stats_need_a_token(api: ApiWorld) -> None:
    async with api.session.get(api.base_url + STATS) as response:
        assert response.status == 401
        assert "detail" in await response.json()
