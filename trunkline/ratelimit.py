"""Token buckets per key (a source address, a service token), bounded in number.

Each key may spend ``rate`` tokens per second with a burst of ``burst``; the
table keeps at most ``max_keys`` buckets and forgets the least recently used
first. Time comes from the caller, so the buckets are tested without sleeping.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

MAX_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    remaining: int  # whole tokens left after this request
    retry_after: float  # seconds until one token is available (0 when allowed)
    reset_after: float  # seconds until the bucket is full again


class KeyedBuckets:
    def __init__(self, rate: float, burst: float, max_keys: int = MAX_KEYS) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at
        self.refused = 0

    def take(self, key: str, now: float) -> Decision:
        tokens, at = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        else:
            self.refused += 1
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return Decision(
            allowed=allowed,
            remaining=math.floor(tokens),
            retry_after=0.0 if allowed else (1.0 - tokens) / self.rate,
            reset_after=(self.burst - tokens) / self.rate,
        )

    def __len__(self) -> int:
        return len(self._buckets)
