"""End-of-turn rules: how a partial transcript ends, and the hang-over each ending gets."""

from __future__ import annotations

import pytest

from trunkline.speech.turns import Ending, EndOfTurn, TurnTiming, text_ending


@pytest.mark.parametrize(
    ("text", "ending"),
    [
        ("Can you help me with my account?", Ending.COMPLETE),
        ("Yes, that's right.", Ending.COMPLETE),
        ("Where are you from?", Ending.COMPLETE),  # a preposition may end a question
        ("I'd like to order a.", Ending.TRAILING),  # Whisper's period after an article
        ("So I was thinking, um", Ending.TRAILING),
        ("My number is five five five and", Ending.TRAILING),
        ("I want to go to.", Ending.TRAILING),
        ("Well, let me see,", Ending.TRAILING),
        ("My order number is 45279.", Ending.COMPLETE),  # a number ends it, not "is"
        ("So I think that.", Ending.TRAILING),
        ("Is that it? I'll take that?", Ending.COMPLETE),
        ("Thank you", Ending.UNKNOWN),
        ("", Ending.UNKNOWN),
        (None, Ending.UNKNOWN),
        ("...", Ending.UNKNOWN),
    ],
)
def test_how_a_partial_transcript_ends(text: str | None, ending: Ending) -> None:
    assert text_ending(text) is ending


@pytest.mark.parametrize(
    ("text", "ending"),
    [
        ("The printer in the office is out of paper,", Ending.UNKNOWN),
        ("Well, let me see,", Ending.UNKNOWN),
        ("I want to go to,", Ending.TRAILING),  # the words still say more is coming
        ("So I was thinking, um,", Ending.TRAILING),
        ("Where are you from,", Ending.TRAILING),
        ("Can you help me with my account?", Ending.COMPLETE),
    ],
)
def test_a_final_comma_says_nothing_for_a_decoder_whose_commas_do_not_trail(
    text: str, ending: Ending
) -> None:
    assert text_ending(text, comma_trails=False) is ending


def test_the_hang_over_for_a_final_comma_follows_the_decoder() -> None:
    timing = TurnTiming(min_ms=200, plain_ms=400, max_ms=800)
    assert EndOfTurn(timing).hangover_ms("The box was open,") == 800
    assert EndOfTurn(timing, comma_trails=False).hangover_ms("The box was open,") == 400
    assert EndOfTurn(timing, comma_trails=False).hangover_ms("I'd like to order a,") == 800


def test_the_hang_over_follows_the_words() -> None:
    turns = EndOfTurn(TurnTiming(min_ms=200, plain_ms=400, max_ms=800))
    assert turns.hangover_ms("Can you help me with my account?") == 200
    assert turns.hangover_ms("I'd like to order a.") == 800
    assert turns.hangover_ms(None) == 400
    assert turns.hangover_ms("Thank you") == 400


def test_a_caller_who_pauses_long_gets_a_longer_plain_hang_over() -> None:
    turns = EndOfTurn(TurnTiming(min_ms=200, plain_ms=400, max_ms=800, pause_margin_ms=100))
    turns.pause_observed(40)  # within a word: not a pause
    assert turns.hangover_ms(None) == 400
    turns.pause_observed(450)
    assert turns.hangover_ms(None) == 550
    turns.pause_observed(1500)  # a long think: the ceiling holds
    assert turns.hangover_ms(None) == 800
    assert turns.hangover_ms("All done.") == 200  # the words still decide when they can
    for _ in range(16):  # the long pauses age out
        turns.pause_observed(100)
    assert turns.hangover_ms(None) == 400


def test_the_default_plain_hang_over_outlasts_a_thoughtful_pause() -> None:
    timing = EndOfTurn().timing
    assert timing.min_ms < timing.plain_ms < timing.max_ms
    assert timing.plain_ms >= 450  # a 350 ms pause plus the VAD's doubt at a word's end
