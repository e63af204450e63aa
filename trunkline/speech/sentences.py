"""Agent text deltas → pieces worth speaking, as early as they can be spoken (sans I/O).

A piece ends at a sentence end (``.``, ``!``, ``?``, ``…`` followed by white
space, or a line break), so synthesis starts while the agent is still
streaming the rest. The first piece of a response may also end at a clause
mark (``,``, ``;``, ``:``) once it holds a few words: the caller hears the
start sooner and the voice's phrasing survives a clause break. A piece never
grows past ``max_chars`` (cut at the last space), and ``finish`` hands over
whatever is left when the agent says ``done``.
"""

from __future__ import annotations

import re

SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*\s+|\n+")
CLAUSE_END = re.compile(r"[,;:]\s+")
FIRST_CLAUSE_MIN_WORDS = 4
MAX_PIECE_CHARS = 240


class SentenceSplitter:
    __slots__ = ("_pending", "_spoken_any", "max_chars")

    def __init__(self, max_chars: int = MAX_PIECE_CHARS) -> None:
        self._pending = ""
        self._spoken_any = False
        self.max_chars = max_chars

    def push(self, delta: str) -> list[str]:
        """Add a delta; return the pieces it completed."""
        self._pending += delta
        pieces: list[str] = []
        while True:
            piece = self._next_piece()
            if piece is None:
                return pieces
            if piece:
                pieces.append(piece)
                self._spoken_any = True

    def finish(self) -> list[str]:
        """The response is complete: whatever remains is the last piece."""
        rest = self._pending.strip()
        self._pending = ""
        self._spoken_any = False
        return [rest] if rest else []

    def _next_piece(self) -> str | None:
        text = self._pending
        match = SENTENCE_END.search(text)
        if match is None and not self._spoken_any:
            clause = CLAUSE_END.search(text)
            if clause is not None and len(text[: clause.start()].split()) >= FIRST_CLAUSE_MIN_WORDS:
                match = clause
        if match is not None and match.end() <= self.max_chars:
            self._pending = text[match.end() :]
            return text[: match.end()].strip()
        if len(text) > self.max_chars:
            cut = text.rfind(" ", 0, self.max_chars)
            cut = cut if cut > 0 else self.max_chars
            self._pending = text[cut:]
            return text[:cut].strip()
        return None
