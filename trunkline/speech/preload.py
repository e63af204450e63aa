"""Loading the speech engines at start-up, in the background, so the first call is not the slow one.

``SpeechPreload.start`` loads each configured engine on a daemon thread of its
own, then runs it once on a short input (the embedded recognizers on half a
second of a quiet tone,
the voice on one word; the transcription step loads the neural VAD too) so
that the embedded models' first-use costs are paid before a caller waits on
them. Each step is logged (``loading speech engine transcription:moonshine``,
``speech engine transcription:moonshine ready in 0.4 s``) and each engine's state —
``loading``, ``ready`` or ``failed`` — is readable at any time from any thread
(``/readyz`` shows it). The engines are the process-wide ones of
``speech.engines``, so the calls use exactly what was loaded here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from enum import StrEnum

import numpy as np

from trunkline.config import Settings
from trunkline.speech.engines import neural_vad_for, synthesizer_for, transcriber_for

log = logging.getLogger("trunkline.speech")

# 0.5 s of PCM16 at 8 kHz: a 440 Hz tone at about -30 dBFS, loud enough to be decoded
# (silence is skipped before the model), with no words in it.
WARM_UP_TONE = (1000 * np.sin(2 * np.pi * 440 * np.arange(4000) / 8000)).astype("<i2").tobytes()
WARM_UP_TEXT = "ready"
WARMED_UP = frozenset(
    {"moonshine", "whisper", "piper"}
)  # the embedded models, run once after loading


_warmed: set[int] = set()  # ids of the process-wide engines already run once
_warmed_lock = threading.Lock()


def _first_warm_up(engine: object) -> bool:
    """True the first time this (process-wide, cached) engine is to be warmed up."""
    with _warmed_lock:
        if id(engine) in _warmed:
            return False
        _warmed.add(id(engine))
        return True


class EngineState(StrEnum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


class SpeechPreload:
    """Each configured engine's load state, by the engine's name."""

    def __init__(self, settings: Settings) -> None:
        self._steps: dict[str, Callable[[], None]] = {}
        transcriber = transcriber_for(settings)
        if transcriber is not None:

            def load_transcriber() -> None:
                transcriber.load()
                if transcriber.name in WARMED_UP and _first_warm_up(transcriber):
                    transcriber.transcribe(WARM_UP_TONE)  # not a remote API: it would bill
                neural_vad_for(settings)  # the calls' VAD; one that cannot load is logged

            self._steps[f"transcription:{transcriber.name}"] = load_transcriber
        synthesizer = synthesizer_for(settings)
        if synthesizer is not None:

            def load_synthesizer() -> None:
                synthesizer.load()
                if synthesizer.name in WARMED_UP and _first_warm_up(synthesizer):
                    for _chunk in synthesizer.synthesize(WARM_UP_TEXT):
                        pass

            self._steps[f"text_to_speech:{synthesizer.name}"] = load_synthesizer
        self._states = {name: EngineState.LOADING for name in self._steps}
        self._lock = threading.Lock()
        self._started = False

    def start(self) -> None:
        """Load every engine on a thread of its own; returns at once. Once only.

        The threads are not daemons: an interpreter that exits while a model loads
        waits for it (``trunkline serve`` does not, see ``daemon.run``), because a
        native loader cut off at exit aborts the process."""
        if self._started:
            return
        self._started = True
        for name, step in self._steps.items():
            thread = threading.Thread(target=self._load, args=(name, step), name=f"preload-{name}")
            thread.start()

    def states(self) -> dict[str, str]:
        """``{"transcription:whisper": "ready", ...}``; empty when speech is off."""
        with self._lock:
            return {name: str(state) for name, state in self._states.items()}

    @property
    def settled(self) -> bool:
        """No engine is still loading (none started, or every one ready or failed)."""
        with self._lock:
            return not self._started or all(
                state is not EngineState.LOADING for state in self._states.values()
            )

    def _load(self, name: str, step: Callable[[], None]) -> None:
        log.info("loading speech engine %s", name)
        started = time.perf_counter()
        try:
            step()
        except Exception as exc:  # a broken engine is reported, the process serves on
            state = EngineState.FAILED
            log.error("speech engine %s failed to load: %s", name, exc)
        else:
            state = EngineState.READY
            log.info("speech engine %s ready in %.1f s", name, time.perf_counter() - started)
        with self._lock:
            self._states[name] = state
