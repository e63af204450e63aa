"""The seam between the control API and the live call machinery.

``CallControl`` is what the API asks of whatever carries calls (the SIP/RTP
gateway in a daemon, a scripted stand-in in tests). The process binds it after
the HTTP listener is up, so the API holds a ``CallControlSlot`` that the
composition root fills. ``Draining`` is the one flag that says the process has
stopped taking new calls; admission and ``/readyz`` read it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from trunkline.storage.models import Call, PhoneNumber


class DialError(Exception):
    """The carrier could not be asked to place the call (API answers 502)."""


class CallCapacityError(DialError):
    """The organisation already has its maximum of concurrent calls (API answers 429)."""


class CallControl(Protocol):
    """What the control API asks of the live call machinery (the SIP/RTP gateway)."""

    async def place_call(self, call: Call, number: PhoneNumber) -> None:
        """Start dialling a stored outbound call; raises DialError when it cannot."""

    async def hangup(self, call: Call) -> bool:
        """End a live call (BYE, or CANCEL before answer); False when this process has no such call."""

    def readiness(self) -> str | None:
        """Why new calls cannot be taken right now (None: ready)."""

    @property
    def owner(self) -> str:
        """The owner name of calls this process carries (its restart sweep ends them)."""


class CallControlSlot:
    """Where the live call machinery is found; empty until the gateway is bound."""

    __slots__ = ("current",)

    def __init__(self, current: CallControl | None = None) -> None:
        self.current = current


class Draining:
    """Set once, on the first shutdown signal: no new calls from then on."""

    __slots__ = ("_active",)

    def __init__(self) -> None:
        self._active = False

    @property
    def active(self) -> bool:
        return self._active

    def begin(self) -> None:
        self._active = True
