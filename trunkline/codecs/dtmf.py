"""RFC 4733 telephone-event payloads (DTMF): 4 bytes per event packet.

    0                   1                   2                   3
    | event (8) |E|R| volume (6) |         duration (16)          |

Events 0-15 are the DTMF keys 0-9, *, #, A-D. Volume is the power level in
-dBm0 (0-63); duration is in timestamp units (samples at 8 kHz).
"""

from __future__ import annotations

from dataclasses import dataclass

DTMF_KEYS = "0123456789*#ABCD"
PAYLOAD_BYTES = 4


class TelephoneEventError(ValueError):
    """A payload that is not a valid RFC 4733 DTMF event."""


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    digit: str
    end: bool
    volume: int
    duration: int

    def __post_init__(self) -> None:
        if len(self.digit) != 1 or self.digit not in DTMF_KEYS:
            raise TelephoneEventError(f"not a DTMF key: {self.digit!r}")
        if not 0 <= self.volume <= 63:
            raise TelephoneEventError(f"volume must be 0-63, got {self.volume}")
        if not 0 <= self.duration <= 0xFFFF:
            raise TelephoneEventError(f"duration must be 0-65535, got {self.duration}")


def encode_event(event: TelephoneEvent) -> bytes:
    flags = (0x80 if event.end else 0) | event.volume
    code = DTMF_KEYS.index(event.digit)
    return bytes((code, flags, event.duration >> 8, event.duration & 0xFF))


def decode_event(payload: bytes | bytearray | memoryview) -> TelephoneEvent:
    """Decode one event; several 4-byte blocks (redundancy, RFC 2198 style) are refused."""
    if len(payload) != PAYLOAD_BYTES:
        raise TelephoneEventError(f"telephone-event payload must be 4 bytes, got {len(payload)}")
    code, flags, high, low = payload[0], payload[1], payload[2], payload[3]
    if code >= len(DTMF_KEYS):
        raise TelephoneEventError(f"event {code} is not a DTMF key")
    return TelephoneEvent(DTMF_KEYS[code], bool(flags & 0x80), flags & 0x3F, (high << 8) | low)
