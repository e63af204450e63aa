"""Local agreement: the words two partial passes agree on become the decoder prefix."""

from __future__ import annotations

from trunkline.speech.incremental import LocalAgreement


def test_words_become_stable_when_two_passes_agree_and_the_newest_is_held_back() -> None:
    agreement = LocalAgreement()
    agreement.partial("I would")
    assert agreement.prefix == ""
    agreement.partial("I would like to")
    assert agreement.prefix == "I"  # "I would" agreed; "would" may still be cut
    agreement.partial("I would like to book a")
    assert agreement.prefix == "I would like"
    assert agreement.latest == "I would like to book a"


def test_case_and_punctuation_do_not_break_agreement() -> None:
    agreement = LocalAgreement()
    agreement.partial("Good morning. I would")
    agreement.partial("good morning, I would like")
    assert agreement.prefix == "good morning, I"


def test_the_stable_prefix_never_shrinks_within_an_utterance() -> None:
    agreement = LocalAgreement()
    agreement.partial("please call me back")
    agreement.partial("please call me back tomorrow")
    assert agreement.prefix == "please call me"
    agreement.partial("please fall me")  # a worse pass: what was agreed stays
    assert agreement.prefix == "please call me"
    agreement.partial("please call me back tomorrow morning")
    assert agreement.prefix == "please call me"  # the previous pass disagreed from word 2
    agreement.partial("please call me back tomorrow morning about")
    assert agreement.prefix == "please call me back tomorrow"


def test_a_new_utterance_starts_from_nothing() -> None:
    agreement = LocalAgreement()
    agreement.partial("yes that is right")
    agreement.partial("yes that is right")
    assert agreement.prefix == "yes that is"
    agreement.reset()
    assert agreement.prefix == ""
    assert agreement.latest == ""
