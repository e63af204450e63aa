"""Media counters and latency probes, cheap enough for every frame.

A ``LatencyHistogram`` is a fixed list of bucket counts: observing is one
``bisect`` and two additions — no allocation, no lock — so the bridge can
time every frame. ``MediaTotals`` is one per gateway: bridges add their
counters to it when they stop, and ``GatewayCollector`` reports those plus
the live calls' counters to Prometheus at scrape time (no per-call labels).

Probes:
- caller → agent: from the moment a caller frame reaches the bridge until its
  WebSocket frame is written (conversion, framing, send);
- agent → caller: from the arrival of an agent chunk until its first frame is
  sent to the caller (the wait for the clock slot and any audio queued ahead).
"""

from __future__ import annotations

import bisect
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from prometheus_client.core import (
    REGISTRY,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from trunkline.gateway.sip import digest as sip_digest
from trunkline.gateway.sip.dialog_guard import REFUSAL_REASONS

if TYPE_CHECKING:
    from trunkline.gateway.sip_gateway import SipGateway

BUCKETS_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)
_BUCKETS_NS = tuple(int(b * 1e9) for b in BUCKETS_SECONDS)


class LatencyHistogram:
    __slots__ = ("counts", "sum_ns")

    def __init__(self) -> None:
        self.counts = [0] * (len(_BUCKETS_NS) + 1)
        self.sum_ns = 0

    def observe_ns(self, elapsed_ns: int) -> None:
        self.counts[bisect.bisect_left(_BUCKETS_NS, elapsed_ns)] += 1
        self.sum_ns += elapsed_ns

    def add(self, other: LatencyHistogram) -> None:
        for index, count in enumerate(other.counts):
            self.counts[index] += count
        self.sum_ns += other.sum_ns

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative (le, count) pairs, as Prometheus wants them."""
        running, out = 0, []
        for bound, count in zip((*BUCKETS_SECONDS, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
        return out


@dataclass
class MediaCounters:
    """Per-bridge counters; the same fields summed per gateway."""

    frames_to_agent: int = 0
    frames_to_caller: int = 0
    agent_frames_rejected: int = 0
    agent_frames_dropped: int = 0  # the agent's socket was too far behind
    playout_frames_dropped: int = 0  # the agent sent more than the backlog bound

    def add(self, other: MediaCounters) -> None:
        for item in fields(self):
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))


@dataclass
class MediaTotals:
    """What the bridges of ended calls counted, per gateway."""

    counters: MediaCounters
    to_agent: LatencyHistogram
    to_caller: LatencyHistogram
    rtp: dict[str, int]

    @classmethod
    def empty(cls) -> MediaTotals:
        return cls(MediaCounters(), LatencyHistogram(), LatencyHistogram(), {})

    def add(
        self,
        counters: MediaCounters,
        to_agent: LatencyHistogram,
        to_caller: LatencyHistogram,
        rtp: dict[str, int],
    ) -> None:
        self.counters.add(counters)
        self.to_agent.add(to_agent)
        self.to_caller.add(to_caller)
        for name, value in rtp.items():
            self.rtp[name] = self.rtp.get(name, 0) + value

    def add_totals(self, other: MediaTotals) -> None:
        self.add(other.counters, other.to_agent, other.to_caller, other.rtp)


_GATEWAYS: weakref.WeakSet[SipGateway] = weakref.WeakSet()
_registered = False


def watch(gateway: SipGateway) -> None:
    """Report this gateway's media figures at ``/metrics`` (one collector for all)."""
    global _registered
    _GATEWAYS.add(gateway)
    if not _registered:
        REGISTRY.register(GatewayCollector())
        _registered = True


def unwatch(gateway: SipGateway) -> None:
    """A closed gateway no longer reports (one process can open several, as tests do)."""
    _GATEWAYS.discard(gateway)


RTP_DROP_REASONS = {
    "dropped_foreign_source": "foreign_source",
    "dropped_unconfirmed_source": "unconfirmed_source",
    "dropped_payload_type": "payload_type",
    "dropped_malformed": "malformed",
    "dropped_late": "late",
}


class GatewayCollector(Collector):
    def collect(self) -> Iterator[Any]:
        gateways = list(_GATEWAYS)
        totals = MediaTotals.empty()
        active = {"inbound": 0, "outbound": 0}
        backlog = 0
        sip = {"malformed_dropped": 0, "bad_requests": 0, "auth_refused": 0, "rate_limited": 0}
        sip.update(dict.fromkeys(REFUSAL_REASONS, 0))
        digest = dict.fromkeys(sip_digest.REFUSAL_REASONS, 0)
        nonces_evicted = 0
        for gateway in gateways:
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
            ("trunkline_agent_frames_rejected", counters.agent_frames_rejected,
             "Agent frames that broke the protocol (dropped)"),
            ("trunkline_agent_frames_dropped", counters.agent_frames_dropped,
             "Media frames not sent because the agent's socket was too far behind"),
            ("trunkline_playout_frames_dropped", counters.playout_frames_dropped,
             "Agent audio dropped beyond the playout backlog bound"),
        ):  # fmt: skip
            yield CounterMetricFamily(name, text, value=value)
        rtp_in = CounterMetricFamily("trunkline_rtp_packets", "RTP packets", labels=["direction"])
        rtp_in.add_metric(["in"], totals.rtp.get("packets_in", 0))
        rtp_in.add_metric(["out"], totals.rtp.get("packets_out", 0))
        yield rtp_in
        dropped = CounterMetricFamily(
            "trunkline_rtp_packets_dropped", "RTP packets dropped", labels=["reason"]
        )
        for field_name, reason in RTP_DROP_REASONS.items():
            dropped.add_metric([reason], totals.rtp.get(field_name, 0))
        yield dropped
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
