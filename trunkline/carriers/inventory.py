"""Where new phone numbers come from: a carrier's inventory or a configured local pool.

``NumberInventory`` is what ``POST /numbers`` asks for a number and what
``DELETE /numbers/{id}`` gives it back to. Two implementations:

- ``LocalPoolInventory`` hands out numbers from configured ranges
  (``TRUNKLINE_NUMBER_POOL`` / ``TRUNKLINE_TOLL_FREE_POOL``), skipping numbers
  already active; a fresh install needs no carrier account.
- ``TelnyxNumberInventory`` (``trunkline.carriers.telnyx_numbers``)
  searches and orders through the Telnyx REST API.

``carriers.configured.open_inventory`` picks one from the settings.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Awaitable, Callable, Collection, Iterator
from dataclasses import dataclass

from trunkline.carriers.numbering import (
    STATE_AREA_CODES,
    country_for,
    is_e164,
    is_toll_free,
    state_for,
)
from trunkline.config import Settings
from trunkline.storage.models import NumberType

InUseLookup = Callable[[], Awaitable[Collection[str]]]

RESERVATION_SECONDS = 60.0  # a handed-out number is not handed out again for this long


class NoInventory(Exception):
    """No number matches the request (the API answers 404)."""


class CarrierError(Exception):
    """The carrier refused or could not be reached (the API answers 502).

    The message is safe to show to API clients: it never contains credentials.
    """


@dataclass(frozen=True, slots=True)
class AcquiredNumber:
    number: str  # E.164
    country: str  # ISO 3166-1 alpha-2
    state: str | None  # US state code when known
    carrier_order_id: str | None  # the carrier's order id, None for the local pool


class NumberInventory(abc.ABC):
    """Acquire numbers for new phone-number records and give released ones back."""

    name: str

    @abc.abstractmethod
    async def acquire(self, number_type: NumberType, state: str | None) -> AcquiredNumber:
        """A number of ``number_type``; ``state`` (US state code) narrows local numbers.

        Raises NoInventory when nothing matches and CarrierError when the
        carrier fails. ``state`` is ignored for toll-free numbers.
        """

    @abc.abstractmethod
    async def release(self, number: str) -> None:
        """Give ``number`` back; raises CarrierError when the carrier fails."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections; the inventory is unusable afterwards."""


@dataclass(frozen=True, slots=True)
class NumberRange:
    """Inclusive range of E.164 numbers of one length, as integers of their digits."""

    first: int
    last: int
    digits: int

    def format(self, value: int) -> str:
        return "+" + str(value).zfill(self.digits)

    def clip(self, first: int, last: int) -> NumberRange | None:
        low, high = max(self.first, first), min(self.last, last)
        return NumberRange(low, high, self.digits) if low <= high else None


def parse_pool(text: str, setting: str = "pool") -> tuple[NumberRange, ...]:
    """Parse ``FIRST-LAST[,FIRST-LAST...]`` (E.164 endpoints, same length, FIRST <= LAST).

    A single number may stand alone (``+15550100000``). Empty text is an empty
    pool. Raises ValueError naming ``setting`` and the offending part.
    """
    ranges: list[NumberRange] = []
    for raw_part in text.split(","):
        part = raw_part.strip()
        if not part:
            continue
        first, sep, last = part.partition("-")
        first, last = first.strip(), (last.strip() if sep else first.strip())
        for endpoint in (first, last):
            if not is_e164(endpoint):
                raise ValueError(f"{setting}: {endpoint!r} in {part!r} is not an E.164 number")
        if len(first) != len(last):
            raise ValueError(f"{setting}: {part!r} has endpoints of different lengths")
        low, high = int(first[1:]), int(last[1:])
        if low > high:
            raise ValueError(f"{setting}: {part!r} has FIRST greater than LAST")
        ranges.append(NumberRange(low, high, len(first) - 1))
    return tuple(ranges)


def _state_blocks(state: str) -> Iterator[tuple[int, int, int]]:
    """(first, last, digits) of every +1 NPA block of a US state."""
    for area_code in STATE_AREA_CODES.get(state, ()):
        base = int(f"1{area_code}0000000")
        yield base, base + 9_999_999, 11


class LocalPoolInventory(NumberInventory):
    """Numbers from configured ranges, lowest free number first.

    A number is free when ``in_use()`` (the repository's active and paused
    numbers) does not list it and this process has not handed it out in the
    last ``RESERVATION_SECONDS`` (so concurrent requests get distinct numbers
    before their records exist). Local numbers report the US state of their
    NANP area code (``numbering.state_for``); numbers outside the area-code
    table, such as the default 555 pool, have no state, so asking for a state
    finds nothing in such a pool.
    """

    name = "local-pool"

    def __init__(
        self,
        local: tuple[NumberRange, ...],
        toll_free: tuple[NumberRange, ...],
        in_use: InUseLookup,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pools: dict[NumberType, tuple[NumberRange, ...]] = {
            "local": local,
            "toll_free": toll_free,
        }
        self._in_use = in_use
        self._clock = clock
        self._reserved: dict[str, float] = {}

    @classmethod
    def from_settings(cls, settings: Settings, in_use: InUseLookup) -> LocalPoolInventory:
        return cls(
            parse_pool(settings.api.number_pool, "TRUNKLINE_NUMBER_POOL"),
            parse_pool(settings.api.toll_free_pool, "TRUNKLINE_TOLL_FREE_POOL"),
            in_use,
        )

    async def acquire(self, number_type: NumberType, state: str | None) -> AcquiredNumber:
        ranges = self._pools[number_type]
        if number_type == "local" and state is not None:
            ranges = tuple(
                clipped
                for pool_range in ranges
                for first, last, digits in _state_blocks(state)
                if pool_range.digits == digits
                and (clipped := pool_range.clip(first, last)) is not None
            )
        taken = set(await self._in_use())
        now = self._clock()
        self._reserved = {n: t for n, t in self._reserved.items() if t > now}
        taken.update(self._reserved)
        for pool_range in ranges:
            number = _first_free(pool_range, taken)
            if number is not None:
                self._reserved[number] = now + RESERVATION_SECONDS
                return AcquiredNumber(
                    number=number,
                    country=country_for(number),
                    state=None if is_toll_free(number) else state_for(number),
                    carrier_order_id=None,
                )
        wanted = number_type if state is None else f"{number_type} in {state}"
        raise NoInventory(f"No available numbers matching the criteria ({wanted})")

    async def release(self, number: str) -> None:
        """Forget the reservation; the number is free once its record is released."""
        self._reserved.pop(number, None)

    async def close(self) -> None:
        self._reserved.clear()


def _first_free(pool_range: NumberRange, taken: Collection[str]) -> str | None:
    """Lowest number of the range not in ``taken``; at most len(taken)+1 probes."""
    value = pool_range.first
    while value <= pool_range.last:
        number = pool_range.format(value)
        if number not in taken:
            return number
        value += 1
    return None
