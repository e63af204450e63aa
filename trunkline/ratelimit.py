"""Token buckets per key (a source address, a service token), bounded in number.

Each key may spend ``rate`` tokens per second with a burst of ``burst``; the
table keeps at most ``max_keys`` buckets and forgets the least recently used
first (counted in ``evicted``, reported to ``on_evict``). Time comes from the
caller, so the buckets are tested without sleeping.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    remaining: int  # whole tokens left after this request
    retry_after: float  # seconds until one token is available (0 when allowed)
    reset_after: float  # seconds until the bucket is full again


class KeyedBuckets:
    def __init__(
        self,
        rate: float,
        burst: float,
        max_keys: int = MAX_KEYS,
        on_evict: Callable[[], None] | None = None,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at
        self._on_evict = on_evict
        self.refused = 0
        self.evicted = 0

    def _tokens(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + max(0.0, now - at) * self.rate)

    def _decision(self, allowed: bool, tokens: float) -> Decision:
        return Decision(
            allowed=allowed,
            remaining=math.floor(tokens),
            retry_after=0.0 if allowed else (1.0 - tokens) / self.rate,
            reset_after=(self.burst - tokens) / self.rate,
        )

    def peek(self, key: str, now: float) -> Decision:
        """What ``take`` would decide now, without spending, counting or remembering."""
        tokens = self._tokens(key, now)
        allowed = tokens >= 1.0
        return self._decision(allowed, tokens - 1.0 if allowed else tokens)

    def take(self, key: str, now: float) -> Decision:
        tokens = self._tokens(key, now)
        self._buckets.pop(key, None)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        else:
            self.refused += 1
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
            self.evicted += 1
            if self._on_evict is not None:
                self._on_evict()
        return self._decision(allowed, tokens)

    def __contains__(self, key: str) -> bool:
        return key in self._buckets

    def __len__(self) -> int:
        return len(self._buckets)
