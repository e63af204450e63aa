"""A G.722 caller's audio (decoded to PCM16 at 16 kHz) in every agent format, and back out as G.722."""

from __future__ import annotations

import numpy as np
import pytest

from trunkline.agent.formats import AGENT_FORMATS, CallerToAgent
from trunkline.codecs.g711 import ulaw_to_pcm16
from trunkline.codecs.g722 import G722Decoder
from trunkline.gateway.rtp.leg import WidebandSender

FRAME_16K = (4000 * np.sin(2 * np.pi * 440 * np.arange(320) / 16000)).astype("<i2").tobytes()


@pytest.mark.parametrize(
    ("name", "frame_bytes"),
    [("mulaw8k", 160), ("pcm16_8k", 320), ("pcm16_16k", 640), ("pcm16_24k", 960)],
)
def test_twenty_ms_of_wideband_becomes_twenty_ms_of_the_agent_format(
    name: str, frame_bytes: int
) -> None:
    convert = CallerToAgent(AGENT_FORMATS[name], codec="G722")
    sizes = {len(convert.convert(FRAME_16K)) for _ in range(10)}
    assert sizes == {frame_bytes}


def test_a_16k_agent_gets_the_decoded_audio_untouched() -> None:
    assert CallerToAgent(AGENT_FORMATS["pcm16_16k"], codec="G722").convert(FRAME_16K) == FRAME_16K


def test_mulaw_agent_gets_the_tone_through_8k() -> None:
    convert = CallerToAgent(AGENT_FORMATS["mulaw8k"], codec="G722")
    pcm = b"".join(ulaw_to_pcm16(convert.convert(FRAME_16K)) for _ in range(10))
    samples = np.frombuffer(pcm, dtype="<i2")[400:].astype(np.float64)
    assert 2000 < np.sqrt(np.mean(samples**2)) < 3500  # 4000 peak: about 2830 RMS


def test_played_mulaw_goes_out_as_160_byte_g722_frames() -> None:
    sender, decoder = WidebandSender(), G722Decoder()
    tone_ulaw = bytes(CallerToAgent(AGENT_FORMATS["mulaw8k"], codec="G722").convert(FRAME_16K))
    frames = [sender.encode(tone_ulaw) for _ in range(20)] + [sender.encode(None)]
    assert {len(f) for f in frames} == {160}
    decoded = np.frombuffer(b"".join(decoder.decode(f) for f in frames[:-1]), dtype="<i2")
    assert np.sqrt(np.mean(decoded[1000:].astype(np.float64) ** 2)) > 1000
