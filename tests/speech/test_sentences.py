"""Agent text deltas cut into pieces worth speaking."""

from __future__ import annotations

from trunkline.speech.sentences import SentenceSplitter


def feed(splitter: SentenceSplitter, text: str, step: int = 3) -> list[str]:
    pieces: list[str] = []
    for i in range(0, len(text), step):
        pieces += splitter.push(text[i : i + step])
    return pieces


def test_sentences_are_released_as_soon_as_they_end() -> None:
    splitter = SentenceSplitter()
    pieces = feed(splitter, "Sure. Your table is booked for eight! Anything else? ")
    assert pieces == ["Sure.", "Your table is booked for eight!", "Anything else?"]
    assert splitter.finish() == []


def test_numbers_and_abbreviated_decimals_do_not_split() -> None:
    splitter = SentenceSplitter()
    pieces = feed(splitter, "It costs 3.50 dollars")
    assert pieces == []
    assert splitter.finish() == ["It costs 3.50 dollars"]


def test_the_first_piece_may_end_at_a_clause_the_rest_wait_for_sentences() -> None:
    splitter = SentenceSplitter()
    pieces = feed(splitter, "Thanks for calling the clinic, how can I help, today")
    assert pieces == ["Thanks for calling the clinic,"]
    assert splitter.finish() == ["how can I help, today"]


def test_a_short_opening_clause_waits() -> None:
    splitter = SentenceSplitter()
    assert feed(splitter, "Yes, of course") == []


def test_long_text_without_punctuation_is_cut_at_a_space() -> None:
    splitter = SentenceSplitter(max_chars=40)
    pieces = feed(splitter, "word " * 30)
    assert pieces and all(len(p) <= 40 for p in pieces)
    assert " ".join(pieces + splitter.finish()).split() == ["word"] * 30


def test_line_breaks_end_pieces() -> None:
    splitter = SentenceSplitter()
    assert splitter.push("First line\nSecond") == ["First line"]
    assert splitter.finish() == ["Second"]
