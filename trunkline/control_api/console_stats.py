"""``GET /api/v1/console/stats``: the figures the web console charts, for one token.

Every token gets its own organisation's count of calls that have not ended
(an identity token: its numbers' calls), read from the database like
``GET /calls?live=true``. The media figures — frames sent, RTP packets
received and lost, the media latency histograms — are process-wide
Prometheus values (the ones ``/metrics`` exports), so they describe every
tenant's calls together: only organisation admin tokens get them, and only
while ``TRUNKLINE_CONSOLE_PROCESS_METRICS`` is on; everyone else gets
``"media": null``. The values are cumulative, as Prometheus keeps them; the
console turns two samples into rates and a windowed p99.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from aiohttp import web
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric

from trunkline.control_api.keys import SETTINGS
from trunkline.control_api.route_table import Ctx, Reply, Route
from trunkline.control_api.schema import Schema, boolean, integer, obj, string
from trunkline.storage.models import utcnow

PREFIX = "/api/v1/console"
LIVE_CALLS_COUNTED = 200  # the count stops here (the console says "200+")

_COUNTERS = {
    "trunkline_agent_frames_sent_total": "frames_to_agent",
    "trunkline_caller_frames_sent_total": "frames_to_caller",
    "trunkline_rtp_packets_lost_total": "rtp_packets_lost",
}
_LATENCIES = {
    "trunkline_media_to_agent_latency_seconds_bucket": "to_agent",
    "trunkline_media_to_caller_latency_seconds_bucket": "to_caller",
}

_BUCKETS: Schema = {
    "type": "array",
    "items": {"type": "array", "items": {"type": ["number", "null"]}},
    "description": "[upper bound in seconds (null: +Inf), cumulative count]",
}
MEDIA: Schema = obj(
    {
        "frames_to_agent": integer(),
        "frames_to_caller": integer(),
        "rtp_packets_in": integer(),
        "rtp_packets_lost": integer(),
        "latency_buckets": obj({"to_agent": _BUCKETS, "to_caller": _BUCKETS}),
    },
    nullable=True,
    description="Process-wide, cumulative; null unless an admin token and the setting allow",
)
STATS: Schema = obj(
    {
        "sampled_at": string(fmt="date-time"),
        "live_calls": integer(),
        "live_calls_capped": boolean(),
        "media": MEDIA,
    }
)


def media_figures(families: Iterable[Metric]) -> dict[str, Any]:
    """The cumulative media values of this process, from its Prometheus registry."""
    figures: dict[str, Any] = {name: 0 for name in _COUNTERS.values()}
    figures["rtp_packets_in"] = 0
    buckets: dict[str, list[list[float | None]]] = {name: [] for name in _LATENCIES.values()}
    for family in families:
        for sample in family.samples:
            if sample.name in _COUNTERS:
                figures[_COUNTERS[sample.name]] += int(sample.value)
            elif sample.name == "trunkline_rtp_packets_total":
                if sample.labels.get("direction") == "in":
                    figures["rtp_packets_in"] += int(sample.value)
            elif sample.name in _LATENCIES:
                bound = float(sample.labels["le"])
                buckets[_LATENCIES[sample.name]].append(
                    [None if math.isinf(bound) else bound, int(sample.value)]
                )
    figures["latency_buckets"] = buckets
    return figures


async def console_stats(ctx: Ctx) -> web.Response:
    principal = ctx.principal
    live = await ctx.calls.list_calls(
        principal.organization_id,
        agent_identity_id=principal.agent_identity_id,
        live=True,
        limit=LIVE_CALLS_COUNTED,
    )
    show_media = principal.is_admin and ctx.request.app[SETTINGS].api.console_process_metrics
    return web.json_response(
        {
            "sampled_at": utcnow().isoformat(),
            "live_calls": len(live),
            "live_calls_capped": len(live) >= LIVE_CALLS_COUNTED,
            "media": media_figures(REGISTRY.collect()) if show_media else None,
        }
    )


ROUTES = [
    Route(
        "GET",
        "/stats",
        console_stats,
        operation_id="console_stats",
        summary="Live-call count and (admin tokens) process-wide media figures for the console",
        tag="Console",
        prefix=PREFIX,
        responses={200: Reply("Figures", STATS)},
    ),
]
