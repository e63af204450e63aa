"""Media metrics at /metrics move as calls happen; the latency histogram's buckets."""

from __future__ import annotations

import asyncio
import shutil

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import require
from tests.gateway.conftest import NUMBER, EchoAgent, Trunkline
from tests.gateway.sip_peer import CarrierCall
from trunkline.gateway.rtp.transport import PortsExhausted
from trunkline.media.counters import BUCKETS_SECONDS, LatencyHistogram


async def scrape_text(trunkline: Trunkline) -> str:
    url = f"http://127.0.0.1:{trunkline.http_port}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        return await response.text()


async def scrape(trunkline: Trunkline) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = await scrape_text(trunkline)
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def value(metrics: dict, name: str, **labels: str) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_media_metrics_move_with_a_call(trunkline: Trunkline, echo_agent: EchoAgent) -> None:
    await trunkline.number("auto_accept", echo_agent.url)
    before = await scrape(trunkline)
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        await carrier.send_audio([b"\x44" * 160] * 25)
        assert len(await carrier.received_audio(25 * 160)) == 25 * 160
        during = await scrape(trunkline)
        assert value(during, "trunkline_calls_active", direction="inbound") == 1
        await promtool_accepts(await scrape_text(trunkline))
        carrier.send_raw_rtp(b"\x80")  # malformed: too short to be RTP
        assert (await carrier.bye(NUMBER)).status == 200
    finally:
        carrier.close()
    after = await scrape(trunkline)
    assert value(after, "trunkline_calls_active", direction="inbound") == 0

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # The agent got the 25 frames, then concealment frames until the hang-up (a steady cadence).
    assert grew("trunkline_agent_frames_sent_total") >= 25
    assert grew("trunkline_caller_frames_sent_total") >= 25  # the echo, concealment included
    assert grew("trunkline_rtp_packets_total", direction="in") == 25
    assert grew("trunkline_rtp_packets_total", direction="out") >= 25  # echo, then silence
    assert grew("trunkline_rtp_packets_dropped_total", reason="malformed") == 1
    assert grew("trunkline_media_to_agent_latency_seconds_count") >= 25
    concealed = sum(
        grew("trunkline_caller_frames_concealed_total", kind=kind)
        for kind in ("repeat", "silence", "idle")
    )
    assert grew("trunkline_agent_frames_sent_total") == 25 + concealed
    for reason in ("late", "duplicate", "overflow", "shrink"):
        assert ("trunkline_jitter_buffer_packets_dropped_total", (("reason", reason),)) in after
    assert grew("trunkline_jitter_buffer_depth_seconds_count") == 25 + concealed
    assert grew("trunkline_media_to_caller_latency_seconds_count") >= 1
    assert value(after, "trunkline_media_to_agent_latency_seconds_bucket", le="+Inf") >= 25


def test_latency_histogram_buckets_are_cumulative() -> None:
    histogram = LatencyHistogram()
    for microseconds in (100, 400, 700, 3000, 2_000_000):
        histogram.observe_ns(microseconds * 1000)
    buckets = dict(histogram.buckets())
    assert buckets[repr(BUCKETS_SECONDS[0])] == 2  # ≤ 0.5 ms
    assert buckets["0.001"] == 3
    assert buckets["0.005"] == 4
    assert buckets["1.0"] == 4 and buckets["+Inf"] == 5
    assert histogram.sum_ns == (100 + 400 + 700 + 3000 + 2_000_000) * 1000


async def promtool_accepts(exposition: str) -> None:
    """``promtool check metrics`` (Debian package prometheus) finds no problem."""
    require(shutil.which("promtool") is not None, "promtool (Debian package prometheus)")
    process = await asyncio.create_subprocess_exec(
        "promtool", "check", "metrics",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(exposition.encode()), 30)
    assert process.returncode == 0, output.decode()


async def test_readiness_reports_capacity(trunkline: Trunkline) -> None:
    url = f"http://127.0.0.1:{trunkline.http_port}/readyz"
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as response:
            assert (response.status, (await response.json())["status"]) == (200, "ready")
        ports = trunkline.gateway.ports
        held = []
        try:
            while True:  # every port pair this machine lets it bind (others may hold some)
                try:
                    held.append(await ports.open())
                except PortsExhausted:
                    break
            assert held
            async with http.get(url) as response:
                assert response.status == 503
                assert (await response.json())["status"].startswith("at capacity")
            ports.release(held.pop())
            async with http.get(url) as response:
                assert (response.status, (await response.json())["status"]) == (200, "ready")
        finally:
            for endpoint in held:
                ports.release(endpoint)


async def test_call_and_sip_counters_move(trunkline: Trunkline, echo_agent: EchoAgent) -> None:
    await trunkline.number("auto_accept", echo_agent.url)
    before = await scrape(trunkline)
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        await asyncio.sleep(0.1)  # a few media clock ticks
        assert (await carrier.bye(NUMBER)).status == 200
    finally:
        carrier.close()
    for _ in range(50):
        after = await scrape(trunkline)
        if value(
            after, "trunkline_calls_total", status="completed", hangup_reason="remote"
        ) > value(before, "trunkline_calls_total", status="completed", hangup_reason="remote"):
            break
        await asyncio.sleep(0.05)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("trunkline_calls_total", status="completed", hangup_reason="remote") == 1
    assert grew("trunkline_sip_requests_received_total", method="INVITE") == 1
    assert grew("trunkline_sip_requests_received_total", method="BYE") == 1
    assert grew("trunkline_sip_responses_sent_total", code="200") == 2  # INVITE and BYE
    assert grew("trunkline_agent_connect_seconds_count") == 1
    assert grew("trunkline_event_loop_lag_seconds_count") > 0
