"""Pure audio codecs: G.711, streaming resampling, re-framing and RFC 4733 DTMF events.

This package is ``trunkline.codecs`` rather than a top-level ``codecs`` so it
never shadows the standard library module of that name.
"""

from trunkline.codecs.dtmf import TelephoneEvent, TelephoneEventError, decode_event, encode_event
from trunkline.codecs.g711 import (
    alaw_to_pcm16,
    alaw_to_ulaw,
    pcm16_to_alaw,
    pcm16_to_ulaw,
    ulaw_to_alaw,
    ulaw_to_pcm16,
)
from trunkline.codecs.reframe import Reframer, frame_bytes
from trunkline.codecs.resample import StreamingResampler

__all__ = [
    "Reframer",
    "StreamingResampler",
    "TelephoneEvent",
    "TelephoneEventError",
    "alaw_to_pcm16",
    "alaw_to_ulaw",
    "decode_event",
    "encode_event",
    "frame_bytes",
    "pcm16_to_alaw",
    "pcm16_to_ulaw",
    "ulaw_to_alaw",
    "ulaw_to_pcm16",
]
