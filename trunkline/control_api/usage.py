"""Per-organisation outbound calling limits and the ``rate_limit`` object of place-call.

The limits are ``TRUNKLINE_OUTBOUND_CALLS_PER_DAY`` and
``TRUNKLINE_OUTBOUND_MINUTES_PER_DAY``. Usage is counted over a rolling window (24 hours) from the stored
call records: ``calls_used`` is the number of outbound calls created in the
window, ``minutes_used`` their talk time (answer to end, or to now while
live), rounded up to whole minutes. ``place-call`` answers 429 with
``Retry-After`` once either limit is reached. The check and the insert are
separate steps, so racing requests can exceed a limit by the number of
requests in flight; the limits are a budget, not a hard cap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from trunkline.config import Settings
from trunkline.storage.models import Call
from trunkline.storage.stores import CallStore

PAGE_SIZE = 200
MAX_PAGES = 50  # scan at most 10,000 recent calls per check


@dataclass(frozen=True, slots=True)
class CallLimits:
    calls_per_window: int = 200
    minutes_per_window: int = 1000
    window_seconds: int = 86_400

    @classmethod
    def from_settings(cls, settings: Settings) -> CallLimits:
        return cls(
            calls_per_window=settings.calls.outbound_calls_per_day,
            minutes_per_window=settings.calls.outbound_minutes_per_day,
        )


@dataclass(frozen=True, slots=True)
class Usage:
    calls_used: int
    seconds_used: float
    oldest_call_at: datetime | None  # creation time of the oldest counted call
    limits: CallLimits

    @property
    def minutes_used(self) -> int:
        return math.ceil(self.seconds_used / 60)

    @property
    def exhausted(self) -> bool:
        return (
            self.calls_used >= self.limits.calls_per_window
            or self.minutes_used >= self.limits.minutes_per_window
        )

    def retry_after_seconds(self, now: datetime) -> int:
        """Seconds until the oldest counted call leaves the window (at least 1)."""
        if self.oldest_call_at is None:
            return 1
        leaves = self.oldest_call_at + timedelta(seconds=self.limits.window_seconds)
        return max(1, math.ceil((leaves - now).total_seconds()))

    def as_json(self) -> dict[str, int]:
        limits = self.limits
        return {
            "calls_used": self.calls_used,
            "calls_remaining": max(0, limits.calls_per_window - self.calls_used),
            "calls_limit": limits.calls_per_window,
            "minutes_used": self.minutes_used,
            "minutes_remaining": max(0, limits.minutes_per_window - self.minutes_used),
            "minutes_limit": limits.minutes_per_window,
        }


def talk_seconds(call: Call, now: datetime) -> float:
    if call.started_at is None:
        return 0.0
    end = call.ended_at or now
    return max(0.0, (end - call.started_at).total_seconds())


async def outbound_usage(
    store: CallStore, organization_id: str, limits: CallLimits, now: datetime
) -> Usage:
    """Count the organisation's outbound calls created within the window ending ``now``."""
    since = now - timedelta(seconds=limits.window_seconds)
    calls = 0
    seconds = 0.0
    oldest: datetime | None = None
    for page in range(MAX_PAGES):
        batch = await store.list_calls(organization_id, limit=PAGE_SIZE, offset=page * PAGE_SIZE)
        for call in batch:
            if call.created_at < since:
                return Usage(calls, seconds, oldest, limits)
            if call.direction == "outbound":
                calls += 1
                seconds += talk_seconds(call, now)
                oldest = call.created_at
        if len(batch) < PAGE_SIZE:
            break
    return Usage(calls, seconds, oldest, limits)
