"""Is a G.711 frame a pause? One ``bytes.translate`` through a table of loud codes.

The jitter buffer drops a frame to bring its delay back down only at a pause
(``gateway.rtp.jitter``): a frame is quiet when no sample in it is louder than
``QUIET_PEAK`` — about -36 dBFS, above the noise floor of a telephone line
in a pause and below the quietest syllables of speech at a normal level.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from trunkline.codecs.g711 import ALAW_DECODE, ULAW_DECODE

QUIET_PEAK = 512  # of 32,767: about -36 dBFS
_LOUD = 1


def _loud_codes(decode: np.ndarray) -> bytes:
    """For each of the 256 codes: 1 when its sample is louder than ``QUIET_PEAK``, else 0."""
    return bytes((np.abs(decode.astype(np.int32)) > QUIET_PEAK).astype(np.uint8).tobytes())


_TABLES = {"pcmu": _loud_codes(ULAW_DECODE), "pcma": _loud_codes(ALAW_DECODE)}


def quiet_test(law: str) -> Callable[[memoryview], bool]:
    """The test for frames of ``law`` (``pcmu`` or ``pcma``)."""
    table = _TABLES[law]

    def quiet(frame: memoryview) -> bool:
        return _LOUD not in bytes(frame).translate(table)

    return quiet
