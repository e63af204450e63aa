"""Incremental decoding of one utterance: which words successive partial passes agree on.

While a party speaks, the audio so far is transcribed again every few hundred
milliseconds. A word is *stable* once two consecutive passes agree on it and
on everything before it ("local agreement"); the last agreed word is held
back, since it may have been cut by the end of the audio. The stable words
only grow within an utterance. They are handed to the next pass, and to the
final one, as a decoder prefix: the model takes them as already said and
decodes only what follows, so at the end of speech only the tail is left.
"""

from __future__ import annotations

import re

_LETTERS = re.compile(r"[^a-z0-9']+")


def _key(word: str) -> str:
    """A word as two passes are compared: case and punctuation do not matter."""
    return _LETTERS.sub("", word.lower())


class LocalAgreement:
    """Stable prefix and latest partial text of the utterance in progress (sans I/O)."""

    __slots__ = ("_previous", "latest", "stable")

    def __init__(self) -> None:
        self.stable: list[str] = []
        self.latest = ""
        self._previous: list[str] = []

    @property
    def prefix(self) -> str:
        """The stable words, as a decoder prefix ('' none)."""
        return " ".join(self.stable)

    def reset(self) -> None:
        """A new utterance begins."""
        self.stable = []
        self.latest = ""
        self._previous = []

    def partial(self, text: str) -> None:
        """One partial pass's text of the audio so far."""
        words = text.split()
        self.latest = text.strip()
        agreed = 0
        for mine, theirs in zip(self._previous, words, strict=False):
            if _key(mine) != _key(theirs):
                break
            agreed += 1
        self._previous = words
        keep = agreed - 1  # the newest agreed word may still be cut by the end of the audio
        if keep > len(self.stable) and all(
            _key(a) == _key(b) for a, b in zip(self.stable, words, strict=False)
        ):
            self.stable = words[:keep]
