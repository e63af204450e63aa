"""End of turn: how long a caller's silence must last before their turn is over (sans I/O).

A fixed hang-over is either slow (every turn waits for it) or splits a
sentence at the first thoughtful pause. ``EndOfTurn`` picks the hang-over
each time it is asked, from what is known of the utterance so far:

- the latest partial transcript, when a decoder provides one: a text that
  ends a sentence (``.``, ``?``, ``!`` after a word that can end one) ends
  the turn after ``min_ms``; a text that trails off — a filler ("um"), a
  conjunction ("and", "so"), an article ("a"), a comma, or outside a
  question a preposition or auxiliary ("to", "is") — waits ``max_ms``,
  whatever punctuation the decoder put after it (Whisper writes "I'd like to
  order a."). A final comma counts only for a decoder whose commas mean it:
  Moonshine ends a fifth of complete sentences with one when the audio stops
  at the last voiced frame ("The printer is out of paper,"), so for it a
  comma after any other word says nothing either way;
- without a partial (or an undecided one), ``plain_ms``, lengthened for a
  caller whose own pauses between words have been long: the hang-over is
  kept above the longest of their recent mid-turn pauses by ``pause_margin_ms``.

All durations are clamped to ``min_ms``..``max_ms``.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from enum import Enum


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words after which a sentence is not over: fillers, conjunctions, articles and possessives.
TRAILING_WORDS = _words(
    """
    um umm uh uhh er erm hmm mm ah
    and or but so because cause although though whereas unless if than
    a an the my your his her our their some every each
    """
)
# Words that leave a statement open but may end a question ("Where are you from?").
OPEN_WORDS = _words(
    """
    to of for with at in on from by about into onto between through as per via
    is are was were am be been being do does did have has had will would can could shall
    should may might must
    i i'd i'm i'll i've we we're we'd you're you'd he she they they're let's like just also that
    """
)

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")  # numbers are words: "is 45279." ends a sentence


class Ending(Enum):
    COMPLETE = "complete"  # ends like a finished sentence
    TRAILING = "trailing"  # more is coming
    UNKNOWN = "unknown"  # no text, or nothing says either way


def text_ending(text: str | None, *, comma_trails: bool = True) -> Ending:
    """How a partial transcript ends (``comma_trails``: a final comma means more is coming)."""
    if not text:
        return Ending.UNKNOWN
    stripped = text.rstrip()
    words = _WORD.findall(stripped.lower())
    if not words:
        return Ending.UNKNOWN
    last = words[-1]
    if last in TRAILING_WORDS or stripped.endswith(("...", "…", "-", "—", ";", ":")):
        return Ending.TRAILING
    if last in OPEN_WORDS and not stripped.endswith("?"):
        return Ending.TRAILING
    if stripped.endswith(","):
        return Ending.TRAILING if comma_trails else Ending.UNKNOWN
    if stripped.endswith((".", "?", "!")):
        return Ending.COMPLETE
    return Ending.UNKNOWN


@dataclass(frozen=True, slots=True)
class TurnTiming:
    min_ms: int = 200  # after a complete sentence
    plain_ms: int = 450  # nothing known of the words
    max_ms: int = 800  # after a trailing word, and the ceiling of every hang-over
    pause_margin_ms: int = 100  # kept above the caller's longest recent mid-turn pause


PAUSES_KEPT = 16  # the caller's recent mid-turn pauses the hang-over adapts to
SHORTEST_PAUSE_MS = 60  # a shorter gap in voice is part of a word, not a pause


class EndOfTurn:
    """One party's end-of-turn policy; learns that party's pauses as the call goes on."""

    __slots__ = ("_comma_trails", "_pauses", "timing")

    def __init__(self, timing: TurnTiming | None = None, *, comma_trails: bool = True) -> None:
        self.timing = timing or TurnTiming()
        self._comma_trails = comma_trails
        self._pauses: deque[int] = deque(maxlen=PAUSES_KEPT)

    def pause_observed(self, pause_ms: int) -> None:
        """Voice resumed within a turn after ``pause_ms`` of silence."""
        if pause_ms >= SHORTEST_PAUSE_MS:
            self._pauses.append(pause_ms)

    @property
    def longest_recent_pause_ms(self) -> int:
        return max(self._pauses, default=0)

    def hangover_ms(self, partial: str | None) -> int:
        """How much silence ends the turn, given the latest partial transcript (None: none)."""
        timing = self.timing
        ending = text_ending(partial, comma_trails=self._comma_trails)
        if ending is Ending.COMPLETE:
            return timing.min_ms
        if ending is Ending.TRAILING:
            return timing.max_ms
        adapted = max(timing.plain_ms, self.longest_recent_pause_ms + timing.pause_margin_ms)
        return min(timing.max_ms, adapted)
