"""Packet-loss concealment for G.711 frames: fade the last frame out, then silence.

When a frame of caller audio is missing at its 20 ms slot, ``Concealer``
produces a stand-in so the agent still gets one frame per slot: the last real
frame repeated, 6 dB quieter each time (one ``bytes.translate`` through a
precomputed table: the samples are decoded, halved and re-encoded), for up to
``fade_frames`` frames, then codec-correct silence (μ-law ``0xFF``, A-law
``0xD5``). A run of concealment longer than ``idle_frames`` is no longer a
loss but a far side that stopped sending (hold, mute): its frames are still
silence, counted apart as ``idle`` so the concealment counts speak of loss.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from trunkline.codecs.g711 import ALAW_DECODE, ALAW_ENCODE, ULAW_DECODE, ULAW_ENCODE

Law = Literal["pcmu", "pcma"]
SILENCE_BYTE: dict[Law, int] = {"pcmu": 0xFF, "pcma": 0xD5}
FADE_FRAMES = 3  # repeats at -6, -12, -18 dB, then silence
IDLE_FRAMES = 50  # a second of nothing: the far side stopped sending


def _halving_table(decode: np.ndarray, encode: np.ndarray) -> bytes:
    """For each code, the code of half its amplitude (-6 dB)."""
    halved = (decode.astype(np.int32) // 2).astype(np.int16)
    return bytes(encode[halved.view(np.uint16)].tobytes())


HALVE: dict[Law, bytes] = {
    "pcmu": _halving_table(ULAW_DECODE, ULAW_ENCODE),
    "pcma": _halving_table(ALAW_DECODE, ALAW_ENCODE),
}


class Concealer:
    """One call's caller-side concealment: remembers the last frame, stands in for lost ones."""

    __slots__ = (
        "_halve",
        "_last",
        "_run",
        "_silence",
        "fade_frames",
        "idle",
        "idle_frames",
        "repeated",
        "silenced",
    )

    def __init__(
        self,
        law: Law,
        frame_bytes: int = 160,
        *,
        fade_frames: int = FADE_FRAMES,
        idle_frames: int = IDLE_FRAMES,
    ) -> None:
        self._halve = HALVE[law]
        self._silence = bytes([SILENCE_BYTE[law]]) * frame_bytes
        self._last = bytearray(self._silence)  # the last frame played (faded in place)
        self._run = 0  # concealment frames since the last real one
        self.fade_frames = fade_frames
        self.idle_frames = idle_frames
        self.repeated = 0  # frames concealed by a faded repeat
        self.silenced = 0  # frames concealed by silence
        self.idle = 0  # silence frames sent while the far side sent nothing for a while

    def played(self, frame: bytes | bytearray | memoryview) -> None:
        """A real frame went out: it is the one to repeat if the next is missing."""
        if len(frame) == len(self._last):
            self._last[:] = frame
        self._run = 0

    def conceal(self) -> bytes:
        """The stand-in for one missing frame."""
        self._run += 1
        run = self._run
        if run <= self.fade_frames:
            faded = bytes(self._last.translate(self._halve))
            self._last[:] = faded
            self.repeated += 1
            return faded
        if run > self.idle_frames:
            self.idle += 1
        else:
            self.silenced += 1
        return self._silence
