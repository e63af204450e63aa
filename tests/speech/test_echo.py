"""The echo guard on real speech: the agent's own voice coming back is echo; a caller is not."""

from __future__ import annotations

import numpy as np

from tests.conftest import require
from tests.speech.voice import spoken
from trunkline.codecs.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from trunkline.speech.echo import REFERENCE_FRAMES, EchoGuard
from trunkline.speech.synthesizer import EspeakSynthesizer, espeak_available

FRAME = 160
AGENT_SAYS = "Thanks for calling, this is the front desk. How can I help you this evening?"


def pcm_of(ulaw: bytes) -> np.ndarray:
    return np.frombuffer(ulaw_to_pcm16(ulaw), dtype="<i2").astype(np.float64)


def as_phone(signal: np.ndarray) -> bytes:
    """PCM16 as it arrives after μ-law coding."""
    return ulaw_to_pcm16(pcm16_to_ulaw(np.clip(signal, -32768, 32767).astype("<i2").tobytes()))


def line_echo(played: np.ndarray, delay: int, loss_db: float, seed: int = 2) -> np.ndarray:
    echo = np.zeros(len(played))
    echo[delay:] = played[: len(played) - delay] * 10 ** (-loss_db / 20)
    return echo + np.random.default_rng(seed).normal(0, 20, len(played))


def judge(guard: EchoGuard, played: bytes, heard: bytes, *, late_every: int = 0) -> list[bool]:
    """One played slot, then one caller frame; every ``late_every``-th caller frame a slot late."""
    verdicts = []
    frames = len(played) // (2 * FRAME)
    pending: list[bytes] = []
    for i in range(frames):
        guard.played(played[i * 320 : (i + 1) * 320])
        pending.append(heard[i * 320 : (i + 1) * 320])
        if late_every and i % late_every == 1:
            continue  # this one arrives with the next
        while pending:
            verdicts.append(guard.is_echo(pending.pop(0)))
    return verdicts


def test_the_agents_voice_coming_back_is_echo_and_its_delay_is_found() -> None:
    agent = pcm_of(spoken(AGENT_SAYS))
    agent = agent[: len(agent) // FRAME * FRAME]
    delay = 8 * 113  # 113 ms: no whole number of frames
    guard = EchoGuard()
    verdicts = judge(guard, as_phone(agent), as_phone(line_echo(agent, delay, loss_db=10)))
    assert np.mean(verdicts[10:]) > 0.9  # after the first 200 ms (the echo's delay, the lock)
    assert guard.locked_lag is not None
    assert abs(guard.locked_lag - ((REFERENCE_FRAMES - 1) * FRAME - delay)) <= 8


def test_caller_frames_arriving_a_slot_late_are_still_told_apart() -> None:
    agent = pcm_of(spoken(AGENT_SAYS))
    agent = agent[: len(agent) // FRAME * FRAME]
    guard = EchoGuard()
    heard = as_phone(line_echo(agent, 8 * 60, loss_db=6))
    verdicts = judge(guard, as_phone(agent), heard, late_every=7)
    assert np.mean(verdicts[10:]) > 0.9


def test_a_caller_speaking_while_the_agent_talks_is_not_echo() -> None:
    require(espeak_available(), "espeak-ng is not installed")
    agent = pcm_of(spoken(AGENT_SAYS))
    agent = agent[: len(agent) // FRAME * FRAME]
    caller = pcm_of(b"".join(EspeakSynthesizer().synthesize("I would like a table for two.")))
    talk = np.zeros(len(agent))
    talk[: min(len(caller), len(agent))] = caller[: len(agent)]
    heard = line_echo(agent, 8 * 90, loss_db=10) + talk
    guard = EchoGuard()
    verdicts = judge(guard, as_phone(agent), as_phone(heard))
    voiced = [
        v
        for i, v in enumerate(verdicts)
        if np.sqrt(np.mean(talk[i * FRAME : (i + 1) * FRAME] ** 2)) > 1500
    ]
    assert len(voiced) > 20 and np.mean(voiced) < 0.25  # the caller's loud frames are theirs


def test_with_the_agent_silent_nothing_is_echo_and_nothing_is_computed() -> None:
    guard = EchoGuard()
    caller = as_phone(pcm_of(spoken("Hello, is anyone there?")))
    for i in range(0, len(caller) - 319, 320):
        guard.played(None)
        assert not guard.is_echo(caller[i : i + 320])
    assert guard.frames_judged == 0
