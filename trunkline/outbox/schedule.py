"""What to do after one delivery attempt: the retry schedule, pure and clock-free.

The schedule follows Standard Webhooks: an immediate attempt, then retries
5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h later, each stretched by up to
±10 % jitter so that a recovering endpoint is not hit by every sender at once.
``Retry-After`` is honoured when it asks for longer (capped at a day). 410
Gone disables the subscription; any other non-2xx (redirects included, which
are never followed) is retried.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from trunkline.storage.models import DeliveryState

RETRY_DELAYS_SECONDS: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
JITTER_FRACTION = 0.1
MAX_RETRY_AFTER_SECONDS = 86_400.0


@dataclass(frozen=True, slots=True)
class Outcome:
    state: DeliveryState
    next_attempt_at: datetime | None = None
    disable_reason: str | None = None


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), MAX_RETRY_AFTER_SECONDS)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return min(max(0.0, (when - now).total_seconds()), MAX_RETRY_AFTER_SECONDS)


def decide(
    attempts_before: int,
    status: int | None,
    retry_after: str | None,
    now: datetime,
    rng: random.Random,
) -> Outcome:
    """The delivery's state after attempt number ``attempts_before + 1``."""
    if status is not None and 200 <= status <= 299:
        return Outcome("delivered")
    if status == 410:
        return Outcome("failed", disable_reason="endpoint answered 410 Gone")
    if attempts_before >= len(RETRY_DELAYS_SECONDS):
        return Outcome("failed")
    delay = RETRY_DELAYS_SECONDS[attempts_before]
    delay *= 1 + rng.uniform(-JITTER_FRACTION, JITTER_FRACTION)
    asked = retry_after_seconds(retry_after, now)
    if asked is not None and asked > delay:
        delay = asked
    return Outcome("pending", next_attempt_at=now + timedelta(seconds=delay))
