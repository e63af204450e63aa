"""Echo of the agent's own voice in the caller's audio: told apart from the caller speaking (sans I/O).

A phone, a speakerphone or a hybrid on the line sends part of what it plays
back to trunkline, 20–200 ms later and attenuated. Taken for the caller's
voice, that echo would make the agent interrupt itself (barge-in) and answer
its own words. ``EchoGuard`` keeps what was played to the caller over the last
``REFERENCE_MS`` (one 20 ms frame per media tick, in a pre-sized buffer) and
judges each voiced caller frame against it:

- **correlation**: the frame's normalized cross-correlation with the played
  audio at every lag from 0 to ``REFERENCE_MS`` (one FFT product, a few tens
  of microseconds). At a lag, ``ρ²`` is the share of the frame's energy that
  a copy of the agent's audio delayed by that lag and scaled accounts for.
  The echo path's delay hardly moves during a call, so the guard tracks it:
  ``LOCK_AFTER`` frames in a row whose best lag agree (within
  ``LAG_SLACK``) at ``ρ² ≥ LOCK_CORRELATION`` lock it, and from then on only
  lags near it count (and near it a frame either way, for caller frames
  that arrive a slot early or late) — voiced speech is periodic, and a
  caller whose pitch is near the agent's correlates well with it at *some*
  lag by chance. A frame is echo at ``ρ² ≥ ECHO_CORRELATION`` near the
  locked lag, or, before a lock, at ``ρ² ≥ LOCK_CORRELATION`` anywhere. Once
  locked, only every ``FULL_SEARCH_EVERY``-th frame searches every lag (to
  follow a path that changes); the others are a few thousand multiply-adds. The caller talking over the
  echo lowers ``ρ²`` in proportion to their share of the energy.
- **level**: a frame more than ``ECHO_LOSS_DB`` below the loudest played frame
  in reach is echo too (a real echo path loses at least that much; a caller
  speaking into the phone is far louder than their own line's echo).

The guard does nothing while the agent has been silent for ``REFERENCE_MS``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FRAME_SAMPLES = 160  # 20 ms at 8 kHz
REFERENCE_FRAMES = 16  # 320 ms: echo delays up to 200 ms, with room for jitter and phase
REFERENCE_MS = REFERENCE_FRAMES * 20
ECHO_CORRELATION = 0.4  # ρ² at or above which a frame is explained by the played audio
ECHO_LOSS_DB = 18.0  # a frame this far below the played audio's level is echo
LOCK_CORRELATION = 0.7  # ρ² that is evidence of the echo path's delay
LOCK_AFTER = 3  # frames in a row agreeing on the delay lock it
LAG_SLACK = 24  # samples (3 ms) either side of the locked delay
FULL_SEARCH_EVERY = 8  # with a locked delay, every 8th judged frame searches all lags
FFT_SIZE = 4096  # ≥ reference + frame - 1, a power of two
OFFSETS = REFERENCE_FRAMES * FRAME_SAMPLES - FRAME_SAMPLES + 1

Floats = npt.NDArray[np.float64]
_LOSS_RATIO = 10 ** (-ECHO_LOSS_DB / 10)  # in energy
_QUIET_ENERGY = 1.0  # a frame's mean-square below this (in units of one LSB²) is digital silence


class EchoGuard:
    """One call's echo judge: fed every played slot, asked about voiced caller frames."""

    __slots__ = (
        "_candidate",
        "_candidate_votes",
        "_energies",
        "_reference",
        "_since_played",
        "echo_frames",
        "frames_judged",
        "locked_lag",
    )

    def __init__(self) -> None:
        self._reference: Floats = np.zeros(REFERENCE_FRAMES * FRAME_SAMPLES)
        self._energies: Floats = np.zeros(REFERENCE_FRAMES)  # mean-square of each played frame
        self._since_played = REFERENCE_FRAMES  # slots since the agent last played audio
        self.frames_judged = 0
        self.echo_frames = 0
        self.locked_lag: int | None = None  # the echo path's delay in reference samples
        self._candidate = -1
        self._candidate_votes = 0

    @property
    def agent_audible(self) -> bool:
        """The agent played audio recently enough to echo now."""
        return self._since_played < REFERENCE_FRAMES

    def played(self, pcm: bytes | None) -> None:
        """What the caller was sent in this slot (PCM16 8 kHz; None: nothing)."""
        reference, energies = self._reference, self._energies
        if pcm is None or len(pcm) != FRAME_SAMPLES * 2:
            if self._since_played >= REFERENCE_FRAMES:
                return  # already all silence: nothing to shift
            self._since_played += 1
            frame: Floats | None = None
        else:
            self._since_played = 0
            frame = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        reference[:-FRAME_SAMPLES] = reference[FRAME_SAMPLES:]
        energies[:-1] = energies[1:]
        if frame is None:
            reference[-FRAME_SAMPLES:] = 0.0
            energies[-1] = 0.0
        else:
            reference[-FRAME_SAMPLES:] = frame
            energies[-1] = float(np.dot(frame, frame)) / FRAME_SAMPLES

    def is_echo(self, pcm: bytes) -> bool:
        """Whether this caller frame is explained by what the agent played (False when silent)."""
        if not self.agent_audible or len(pcm) != FRAME_SAMPLES * 2:
            return False
        self.frames_judged += 1
        frame = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        energy = float(np.dot(frame, frame))
        if energy / FRAME_SAMPLES < _QUIET_ENERGY or energy / FRAME_SAMPLES < (
            float(self._energies.max()) * _LOSS_RATIO
        ):
            self.echo_frames += 1
            return True
        lag = self.locked_lag
        if lag is None or self.frames_judged % FULL_SEARCH_EVERY == 0:
            rho2 = correlations_squared(self._reference, frame, energy)
            best = int(rho2.argmax())
            self._track(best, float(rho2[best]))
            lag = self.locked_lag
            if lag is None:
                echo = float(rho2[best]) >= LOCK_CORRELATION
            else:
                echo = float(rho2[near_offsets(lag)].max()) >= ECHO_CORRELATION
        else:
            echo = near_correlation(self._reference, frame, energy, lag) >= ECHO_CORRELATION
        if echo:
            self.echo_frames += 1
        return echo

    def _track(self, lag: int, rho2: float) -> None:
        """Evidence for the echo path's delay: ``LOCK_AFTER`` agreeing strong frames lock it."""
        if rho2 < LOCK_CORRELATION:
            self._candidate_votes = 0
            return
        if abs(lag - self._candidate) <= LAG_SLACK and self._candidate_votes > 0:
            self._candidate_votes += 1
        else:
            self._candidate, self._candidate_votes = lag, 1
        if self._candidate_votes >= LOCK_AFTER:
            self.locked_lag = lag


def near_offsets(lag: int) -> npt.NDArray[np.intp]:
    """Offsets within ``LAG_SLACK`` of ``lag`` and of its neighbours a frame away either side.

    A caller frame that arrives a slot early or late against the media tick
    (network jitter) sees the same echo a whole frame further along the buffer."""
    spans = [np.arange(c - LAG_SLACK, c + LAG_SLACK + 1) for c in (lag - FRAME_SAMPLES, lag,
             lag + FRAME_SAMPLES)]  # fmt: skip
    offsets = np.concatenate(spans)
    return offsets[(offsets >= 0) & (offsets < OFFSETS)]


def near_correlation(reference: Floats, frame: Floats, frame_energy: float, lag: int) -> float:
    """The largest ρ² at the offsets near ``lag``: a few thousand multiply-adds, no FFT."""
    windows = np.lib.stride_tricks.sliding_window_view(reference, len(frame))[near_offsets(lag)]
    products = windows @ frame
    window_energy = np.einsum("ij,ij->i", windows, windows)
    floor = max(1e-3 * float(window_energy.max()), 1e-9)
    rho2 = (products * products) / (np.maximum(window_energy, floor) * max(frame_energy, 1e-9))
    return float(rho2.max())


def correlations_squared(reference: Floats, frame: Floats, frame_energy: float) -> Floats:
    """ρ² between ``frame`` and each same-length stretch of ``reference``, by offset.

    Offset ``k`` is the stretch starting ``k`` samples into the reference,
    that is, played ``len(reference) - k`` samples before the frame's end."""
    n = len(frame)
    spectrum = np.fft.rfft(reference, FFT_SIZE) * np.conj(np.fft.rfft(frame, FFT_SIZE))
    products = np.fft.irfft(spectrum, FFT_SIZE)[: len(reference) - n + 1]
    squares = np.concatenate(([0.0], np.cumsum(reference * reference)))
    window_energy = squares[n:] - squares[:-n]
    floor = max(1e-3 * float(window_energy.max()), 1e-9)  # the played silences count for nothing
    return (products * products) / (np.maximum(window_energy, floor) * max(frame_energy, 1e-9))
