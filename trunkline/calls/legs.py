"""What the call core asks of the caller's side of a call, whatever carries it.

A SIP dialog (``gateway.sip_inbound_leg``), a carrier media stream
(``gateway.carrier_streams``) and an outbound SIP call
(``gateway.outbound_calls``) each implement ``CallLeg``; the ring-and-answer
flow (``calls.driver``) uses nothing else of them, so a call feature
(voicemail, recording, fallback, limits) is written once for every leg.
"""

from __future__ import annotations

from typing import Protocol

from trunkline.media.session import MediaSession


class MediaUnavailable(Exception):
    """The leg cannot carry media now (every RTP port is in use)."""


class CallLeg(Protocol):
    @property
    def caller_codec(self) -> str:
        """The caller's audio codec (PCMU, PCMA or G722); known once media is opened."""
        ...

    def ring(self) -> None:
        """Tell the caller the call is ringing (SIP 180)."""
        ...

    async def open_media(self) -> None:
        """Make ready to carry media (bind an RTP port); raises ``MediaUnavailable``."""
        ...

    def connect_media(self, bridge: MediaSession) -> None:
        """Become the caller side of ``bridge``."""
        ...

    def answer(self) -> None:
        """Answer the caller (SIP 200 OK with the SDP answer)."""
        ...

    def reject(self, status: int, reason: str | None, retry_after: str | None) -> None:
        """Refuse the call before the answer with a SIP status."""
        ...

    def confirm_cancel(self) -> None:
        """The caller canceled before the answer: confirm it (SIP 487)."""
        ...

    def refuse_ringing(self) -> None:
        """An API hang-up before the answer: stop ringing (SIP 480)."""
        ...

    def hang_up(self) -> None:
        """End the answered call from our side (SIP BYE, close the stream)."""
        ...

    def close_media(self) -> None:
        """Release what ``open_media`` took (the RTP port)."""
        ...
