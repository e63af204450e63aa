"""The transcript normaliser and the word error rate computed on it."""

from __future__ import annotations

import pytest

from trunkline.speech.wer import normalize, word_error_rate, word_errors


@pytest.mark.parametrize(
    ("said", "written"),
    [
        ("My order number is four five two seven nine.", "My order number is 45279."),
        ("My order number is four five two seven nine.", "My order number is 4-5-27-9"),
        ("We will arrive at eight o'clock tonight.", "We will arrive at 8 o' clock tonight"),
        ("two hundred and forty five dollars", "245 dollars"),
        ("twenty five thousand three hundred", "25,300"),
        ("and mister john dashwood", "And Mr. John Dashwood"),
        ("we are sure it will not rain", "We're sure it won't rain!"),
        ("leave it with my neighbour", "Leave it with my neighbor."),
        ("cold hearted", "cold-hearted"),
        ("i think so", "I, uh, think so... um"),
    ],
)
def test_what_was_said_and_how_it_was_written_agree(said: str, written: str) -> None:
    assert normalize(said) == normalize(written)
    assert word_error_rate(said, written) == 0.0


def test_numbers_that_differ_still_count_as_errors() -> None:
    assert normalize("forty five") == "4 5"
    assert normalize("forty six") != normalize("forty five")
    assert word_errors("call me at ten", "call me at eleven") == (1, 5)  # "1 0" vs "1 1"


def test_substitutions_insertions_and_deletions_are_counted() -> None:
    assert word_errors("the cat sat on the mat", "the cat sat on the mat") == (0, 6)
    assert word_errors("the cat sat on the mat", "the bat sat on mat") == (2, 6)
    assert word_errors("the cat sat", "the cat sat down there") == (2, 3)
    assert word_error_rate("", "anything") == 1.0
    assert word_error_rate("", "") == 0.0
