"""The scrape-time Prometheus collector: the gateways' media, call and SIP figures.

Per-frame figures are not prometheus-client metrics (too dear per frame):
each gateway keeps plain counters (``media.counters``) and this collector
reads every watched gateway when ``/metrics`` is scraped (no per-call
labels). It knows the gateway only as the ``WatchedGateway`` protocol, so the
gateway can import it without a cycle.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from prometheus_client.core import (
    REGISTRY,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from trunkline.gateway.rtp.jitter import DEPTH_BUCKETS
from trunkline.gateway.sip import digest as sip_digest
from trunkline.gateway.sip.dialog_guard import REFUSAL_REASONS
from trunkline.gateway.sip.request_rules import REFUSAL_REASONS as RULE_REFUSAL_REASONS
from trunkline.media.counters import MediaTotals


class _Budget(Protocol):
    @property
    def dropped(self) -> int: ...


class _Nonces(Protocol):
    @property
    def evicted(self) -> int: ...


class _Digest(Protocol):
    @property
    def refusals(self) -> Mapping[str, int]: ...
    @property
    def counts(self) -> _Nonces: ...


class _Playout(Protocol):
    @property
    def backlog_frames(self) -> int: ...


class _Session(Protocol):
    @property
    def playout(self) -> _Playout: ...


class _Record(Protocol):
    @property
    def direction(self) -> str: ...


class _Lifecycle(Protocol):
    @property
    def record(self) -> _Record: ...


class _Call(Protocol):
    @property
    def answered(self) -> bool: ...
    @property
    def ended(self) -> bool: ...
    @property
    def lifecycle(self) -> _Lifecycle: ...
    @property
    def bridge(self) -> _Session | None: ...


class WatchedGateway(Protocol):
    """What the collector reads from a gateway at scrape time."""

    @property
    def calls(self) -> Mapping[str, _Call]: ...
    @property
    def malformed_dropped(self) -> int: ...
    @property
    def bad_requests(self) -> int: ...
    @property
    def auth_refused(self) -> int: ...
    @property
    def budget(self) -> _Budget: ...
    @property
    def dialog_refused(self) -> Mapping[str, int]: ...
    @property
    def shared_port_dropped(self) -> Mapping[str, int]: ...
    @property
    def digest(self) -> _Digest: ...

    def media_snapshot(self) -> MediaTotals: ...


_GATEWAYS: weakref.WeakSet[WatchedGateway] = weakref.WeakSet()
_registered = False


def watch(gateway: WatchedGateway) -> None:
    """Report this gateway's media figures at ``/metrics`` (one collector for all)."""
    global _registered
    _GATEWAYS.add(gateway)
    if not _registered:
        REGISTRY.register(GatewayCollector())
        _registered = True


def unwatch(gateway: WatchedGateway) -> None:
    """A closed gateway no longer reports (one process can open several, as tests do)."""
    _GATEWAYS.discard(gateway)


RTP_DROP_REASONS = {
    "dropped_foreign_source": "foreign_source",
    "dropped_unconfirmed_source": "unconfirmed_source",
    "dropped_payload_type": "payload_type",
    "dropped_malformed": "malformed",
    "dropped_late": "late",
}
# Datagrams the shared RTP ports dropped before any call saw them (``rtp.shared_port``).
SHARED_PORT_DROP_REASONS = ("unrouted", "oversized", "send_full", "receive_buffer")

JITTER_DROP_REASONS = {
    "jitter_late": "late",
    "jitter_duplicate": "duplicate",
    "jitter_overflow": "overflow",
    "jitter_shrunk": "shrink",
}
CONCEALED_KINDS = {
    "concealed_repeat": "repeat",
    "concealed_silence": "silence",
    "concealed_idle": "idle",
}


def _jitter_figures(rtp: Mapping[str, int]) -> Iterator[Any]:
    """The caller jitter buffers' drops, losses and depths, and the frames concealed."""
    dropped = CounterMetricFamily(
        "trunkline_jitter_buffer_packets_dropped",
        "Caller RTP packets the jitter buffer dropped",
        labels=["reason"],
    )
    for field_name, reason in JITTER_DROP_REASONS.items():
        dropped.add_metric([reason], rtp.get(field_name, 0))
    yield dropped
    for name, field_name, text in (
        ("trunkline_jitter_buffer_packets_lost", "jitter_lost",
         "Caller RTP packets that had not come when their turn to play came (concealed)"),
        ("trunkline_jitter_buffer_underruns", "jitter_underruns",
         "Caller frame slots that found the jitter buffer empty"),
        ("trunkline_jitter_buffer_resets", "jitter_resets",
         "Caller RTP streams restarted (new SSRC or sequence restart)"),
    ):  # fmt: skip
        yield CounterMetricFamily(name, text, value=rtp.get(field_name, 0))
    concealed = CounterMetricFamily(
        "trunkline_caller_frames_concealed",
        "Caller frames made up for missing audio (idle: the caller sent nothing for a second)",
        labels=["kind"],
    )
    for field_name, kind in CONCEALED_KINDS.items():
        concealed.add_metric([kind], rtp.get(field_name, 0))
    yield concealed
    bounds = [repr(round(frames * 0.02, 2)) for frames in DEPTH_BUCKETS] + ["+Inf"]
    for name, key, text in (
        ("trunkline_jitter_buffer_depth_seconds", "depth",
         "Caller audio buffered after each 20 ms frame slot"),
        ("trunkline_jitter_buffer_target_seconds", "target",
         "The jitter buffer's target depth at each 20 ms frame slot"),
    ):  # fmt: skip
        running, buckets = 0, []
        for index, bound in enumerate(bounds):
            running += rtp.get(f"jitter_{key}_bucket_{index}", 0)
            buckets.append((bound, float(running)))
        family = HistogramMetricFamily(name, text)
        family.add_metric([], buckets, rtp.get(f"jitter_{key}_frames_sum", 0) * 0.02)
        yield family


class GatewayCollector(Collector):
    def collect(self) -> Iterator[Any]:
        gateways = list(_GATEWAYS)
        totals = MediaTotals.empty()
        active = {"inbound": 0, "outbound": 0}
        backlog = 0
        sip = {"malformed_dropped": 0, "bad_requests": 0, "auth_refused": 0, "rate_limited": 0}
        sip.update(dict.fromkeys((*REFUSAL_REASONS, *RULE_REFUSAL_REASONS), 0))
        digest = dict.fromkeys(sip_digest.REFUSAL_REASONS, 0)
        nonces_evicted = 0
        shared_dropped = dict.fromkeys(SHARED_PORT_DROP_REASONS, 0)
        for gateway in gateways:
            for reason, count in gateway.shared_port_dropped.items():
                shared_dropped[reason] += count
            totals.add_totals(gateway.media_snapshot())
            for call in gateway.calls.values():
                if call.answered and not call.ended:
                    active[call.lifecycle.record.direction] += 1
                if call.bridge is not None:
                    backlog += call.bridge.playout.backlog_frames
            sip["malformed_dropped"] += gateway.malformed_dropped
            sip["bad_requests"] += gateway.bad_requests
            sip["auth_refused"] += gateway.auth_refused
            sip["rate_limited"] += gateway.budget.dropped
            for reason, count in gateway.dialog_refused.items():
                sip[reason] += count
            for reason, value in gateway.digest.refusals.items():
                digest[reason] += value
            nonces_evicted += gateway.digest.counts.evicted
        calls = GaugeMetricFamily(
            "trunkline_calls_active", "Answered calls in progress", labels=["direction"]
        )
        for direction, count in active.items():
            calls.add_metric([direction], count)
        yield calls
        yield GaugeMetricFamily(
            "trunkline_playout_backlog_seconds",
            "Agent audio queued for callers, summed over live calls",
            value=backlog * 0.02,
        )
        for name, histogram, text in (
            ("trunkline_media_to_agent_latency_seconds", totals.to_agent,
             "Caller frame reaching the bridge to its WebSocket frame being written"),
            ("trunkline_media_to_caller_latency_seconds", totals.to_caller,
             "Agent audio arriving to its first frame being sent to the caller"),
        ):  # fmt: skip
            family = HistogramMetricFamily(name, text)
            family.add_metric([], histogram.buckets(), histogram.sum_ns / 1e9)
            yield family
        counters = totals.counters
        for name, value, text in (
            ("trunkline_agent_frames_sent", counters.frames_to_agent, "Media frames sent to agents"),
            ("trunkline_caller_frames_sent", counters.frames_to_caller,
             "Frames of agent audio sent to callers"),
            ("trunkline_agent_frames_dropped", counters.agent_frames_dropped,
             "Media frames not sent because the agent's socket was too far behind"),
            ("trunkline_playout_frames_dropped", counters.playout_frames_dropped,
             "Agent audio dropped beyond the playout backlog bound"),
            ("trunkline_redial_frames_dropped", counters.redial_frames_dropped,
             "Agent audio still queued from a lost agent socket, dropped when the redialled "
             "socket took over"),
            ("trunkline_redial_marks_dropped", counters.redial_marks_dropped,
             "Marks of a lost agent socket dropped unechoed when the redialled socket took over"),
        ):  # fmt: skip
            yield CounterMetricFamily(name, text, value=value)
        rtp_in = CounterMetricFamily("trunkline_rtp_packets", "RTP packets", labels=["direction"])
        rtp_in.add_metric(["in"], totals.rtp.get("packets_in", 0))
        rtp_in.add_metric(["out"], totals.rtp.get("packets_out", 0))
        yield rtp_in
        yield CounterMetricFamily(
            "trunkline_rtp_packets_lost",
            "Inbound RTP packets never received (gaps in their sequence numbers)",
            value=totals.rtp.get("lost", 0),
        )
        yield CounterMetricFamily(
            "trunkline_rtp_packets_retimed",
            "Inbound RTP packets over 3 ms out of step with the one before, timed for the "
            "jitter estimates by the kernel's receive stamp instead of when they were handled",
            value=totals.rtp.get("retimed", 0),
        )
        dropped = CounterMetricFamily(
            "trunkline_rtp_packets_dropped", "RTP packets dropped", labels=["reason"]
        )
        for field_name, reason in RTP_DROP_REASONS.items():
            dropped.add_metric([reason], totals.rtp.get(field_name, 0))
        for reason, count in shared_dropped.items():
            dropped.add_metric([reason], count)
        yield dropped
        yield from _jitter_figures(totals.rtp)
        requests = CounterMetricFamily(
            "trunkline_sip_requests_refused", "SIP requests not served", labels=["reason"]
        )
        for reason, value in sip.items():
            requests.add_metric([reason], value)
        yield requests
        refused = CounterMetricFamily(
            "trunkline_sip_digest_refused",
            "Digest answers from untrusted sources not accepted",
            labels=["reason"],
        )
        for reason, value in digest.items():
            refused.add_metric([reason], value)
        yield refused
        yield CounterMetricFamily(
            "trunkline_sip_digest_nonces_evicted",
            "Nonce counts forgotten because the table was full (older nonces then go stale)",
            value=nonces_evicted,
        )
