"""Numbered media frames: which frames of a measuring window came back, per direction.

Every μ-law frame a benchmark carrier sends starts with a 24-byte tag that
trunkline carries to the echo agent and back untouched (μ-law agents get the
caller's bytes as they are)::

    bytes  0–8   carrier send time (CLOCK_MONOTONIC ns)
    bytes  8–16  agent send time, written by the echo agent
    bytes 16–20  the carrier leg's index
    bytes 20–24  the leg's frame number, counting from 0

Loss is counted by these numbers, not by comparing how many frames went out
and came in over a span of time: a window is the range of frame numbers a
leg sent while it was open, and a frame counts as returned only when its
number is in that range. Frames in flight when the window opens are excluded
by their number; frames in flight when it closes still count if they come
back within the grace period the caller waits before counting. The agent
keeps the same ledger of the numbers it received, so loss splits into
carrier → agent and agent → carrier.

A frame trunkline made up for a missing one (packet-loss concealment: the
last frame faded, or silence) carries a garbled tag: ``read_tag`` refuses
tags whose leg or number no run could reach, so such frames are neither
counted nor timed.

PCM formats transcode the tag away; their loss is counted instead, with quiet
window edges (nothing sent for a while before and after the window, so no
frame sent outside it is in flight), and the agent's arrival times split it
by direction.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

TAG = struct.Struct("!qqII")  # carrier stamp, agent stamp, leg, frame number
CARRIER_STAMP = struct.Struct("!q")  # at offset 0 of the payload
AGENT_STAMP = struct.Struct("!q")  # at offset 8
AGENT_STAMP_OFFSET = 8
LEG_AND_NUMBER = struct.Struct("!II")  # at offset 16
LEG_OFFSET = 16
_LEDGER_HEADER = struct.Struct("!II")  # leg index, ledger length
_GROWTH = 4096
MAX_LEGS = 100_000  # beyond any run's calls
MAX_NUMBER = 1 << 24  # frames: 93 hours of one leg


def read_tag(payload: bytes | memoryview, offset: int = 0) -> tuple[int, int] | None:
    """The (leg, frame number) tagged at ``offset`` of ``payload``; None if no run tagged it."""
    if len(payload) < offset + TAG.size:
        return None
    leg, number = LEG_AND_NUMBER.unpack_from(payload, offset + LEG_OFFSET)
    if leg >= MAX_LEGS or number >= MAX_NUMBER:
        return None  # a concealment frame, or silence
    return leg, number


def tag_frame(leg: int, number: int, sent_ns: int, audio: bytes | memoryview) -> bytes:
    """A payload of ``len(audio)`` bytes: the tag, then ``audio`` from byte 24 on."""
    return TAG.pack(sent_ns, 0, leg, number) + audio[TAG.size :]


class FrameLedger:
    """The frame numbers one leg has seen (a byte per number: 1 when seen)."""

    __slots__ = ("seen",)

    def __init__(self, seen: bytes | bytearray = b"") -> None:
        self.seen = bytearray(seen)

    def mark(self, number: int) -> None:
        if number >= len(self.seen):
            self.seen.extend(bytes(max(number + 1 - len(self.seen), _GROWTH)))
        self.seen[number] = 1

    def count(self, first: int, last: int) -> int:
        """How many numbers in ``first`` ≤ n < ``last`` were seen."""
        return self.seen.count(1, first, last)


class LedgerBook:
    """One ledger per leg index, as the echo agent keeps them."""

    __slots__ = ("ledgers",)

    def __init__(self) -> None:
        self.ledgers: dict[int, FrameLedger] = {}

    def mark_payload(self, payload: bytes | memoryview) -> bool:
        """Record the leg and number tagged in ``payload`` (a μ-law frame); False: no tag."""
        tag = read_tag(payload)
        if tag is None:
            return False
        leg, number = tag
        ledger = self.ledgers.get(leg)
        if ledger is None:
            ledger = self.ledgers[leg] = FrameLedger()
        ledger.mark(number)
        return True

    def write(self, path: Path) -> None:
        chunks = []
        for leg, ledger in self.ledgers.items():
            chunks.append(_LEDGER_HEADER.pack(leg, len(ledger.seen)))
            chunks.append(bytes(ledger.seen))
        path.write_bytes(b"".join(chunks))

    @classmethod
    def read(cls, path: Path) -> LedgerBook:
        book = cls()
        data = path.read_bytes() if path.exists() else b""
        offset = 0
        while offset + _LEDGER_HEADER.size <= len(data):
            leg, length = _LEDGER_HEADER.unpack_from(data, offset)
            offset += _LEDGER_HEADER.size
            book.ledgers[leg] = FrameLedger(data[offset : offset + length])
            offset += length
        return book


Window = tuple[int, int, int]  # leg index, first number sent in the window, one past the last


def window_loss(
    windows: Iterable[Window],
    returned: Mapping[int, FrameLedger],
    at_agent: Mapping[int, FrameLedger] | None = None,
) -> dict[str, Any]:
    """Frames sent in ``windows``: how many were lost, in total and per direction.

    ``returned`` holds what came back to the carrier, ``at_agent`` what reached
    the agent (None: only the total is known). A frame the agent never got was
    lost carrier → agent; one it got (and so echoed) that never came back was
    lost agent → carrier.
    """
    empty = FrameLedger()
    sent = back = reached = 0
    for leg, first, last in windows:
        sent += last - first
        back += returned.get(leg, empty).count(first, last)
        if at_agent is not None:
            reached += at_agent.get(leg, empty).count(first, last)
    lost = sent - back
    result: dict[str, Any] = {
        "frames_sent": sent,
        "frames_lost": lost,
        "loss": lost / sent if sent else 0.0,
        "to_agent": None,
        "to_carrier": None,
    }
    if at_agent is not None:
        to_agent_lost = sent - reached
        to_carrier_lost = max(0, reached - back)
        result["to_agent"] = {
            "sent": sent,
            "lost": to_agent_lost,
            "loss": to_agent_lost / sent if sent else 0.0,
        }
        result["to_carrier"] = {
            "sent": reached,
            "lost": to_carrier_lost,
            "loss": to_carrier_lost / reached if reached else 0.0,
        }
    return result


def counted_loss(sent: int, received: int, reached: int | None = None) -> dict[str, Any]:
    """Loss by count, for frames whose tag does not survive (PCM agents).

    Only exact when nothing sent outside the window is in flight at its edges
    (the callers quiet them). ``reached``: how many frames the agent received in
    the window, when it counted them; then the loss splits by direction too.
    """
    lost = max(0, sent - received)
    result: dict[str, Any] = {
        "frames_sent": sent,
        "frames_lost": lost,
        "loss": lost / sent if sent else 0.0,
        "to_agent": None,
        "to_carrier": None,
    }
    if reached is not None:
        reached = min(reached, sent)
        result["to_agent"] = {
            "sent": sent,
            "lost": sent - reached,
            "loss": (sent - reached) / sent if sent else 0.0,
        }
        back = min(received, reached)
        result["to_carrier"] = {
            "sent": reached,
            "lost": reached - back,
            "loss": (reached - back) / reached if reached else 0.0,
        }
    return result


def arrivals_between(arrivals: Sequence[float], start: float, end: float) -> int:
    """How many of the sorted ``arrivals`` (seconds) fall in ``start`` ≤ t ≤ ``end``."""
    return bisect.bisect_right(arrivals, end) - bisect.bisect_left(arrivals, start)
