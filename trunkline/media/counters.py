"""Media counters and latency histograms, cheap enough for every frame.

A ``LatencyHistogram`` is a fixed list of bucket counts: observing is one
``bisect`` and two additions — no allocation, no lock. ``MediaTotals`` is one
per gateway: sessions add their counters to it when they stop; the gateway's
scrape-time collector (``gateway.collector``) reports those plus the live
calls' counters.

Probes, each timing one frame (or agent chunk) in ``LATENCY_SAMPLE_EVERY`` —
the first, then every 16th — observed with that weight, so a histogram's
count and sum still stand for every frame while the clock is read on one in
16:
- caller → agent: from the moment a caller frame reaches the session until its
  WebSocket frame is written (conversion, framing, send);
- agent → caller: from the arrival of an agent chunk until its first frame is
  sent to the caller (the wait for the clock slot and any audio queued ahead).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, fields

BUCKETS_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)
_BUCKETS_NS = tuple(int(b * 1e9) for b in BUCKETS_SECONDS)
LATENCY_SAMPLE_EVERY = 16  # a power of two: the media session tests a counter's low bits
LATENCY_SAMPLE_MASK = LATENCY_SAMPLE_EVERY - 1


class LatencyHistogram:
    __slots__ = ("counts", "sum_ns")

    def __init__(self) -> None:
        self.counts = [0] * (len(_BUCKETS_NS) + 1)
        self.sum_ns = 0

    def observe_ns(self, elapsed_ns: int, weight: int = 1) -> None:
        """One measurement, standing for ``weight`` events (a sampled probe's)."""
        self.counts[bisect.bisect_left(_BUCKETS_NS, elapsed_ns)] += weight
        self.sum_ns += elapsed_ns * weight

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
    redial_frames_dropped: int = 0  # queued from a lost agent socket, dropped on redial
    redial_marks_dropped: int = 0  # marks of a lost agent socket, never echoed

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
