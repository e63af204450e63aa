"""Word error rate: how far a transcript is from what was said (tests and benchmarks use it).

Both texts are normalised first, in the spirit of Whisper's English text
normaliser, so that a transcript is not charged for writing what was said
differently: lower case, punctuation and hyphens dropped, fillers ("uh",
"um") dropped, common contractions and abbreviations spelled out, British
spellings made American, and numbers written as digits, compared digit by
digit ("four five two seven nine", "45279" and "4-5-27-9" all become
``4 5 2 7 9``; "eight o'clock", "8 o' clock" and "8 o'clock" agree).
"""

from __future__ import annotations

import re

WORD = re.compile(r"[a-z0-9']+")

FILLERS = frozenset({"uh", "um", "umm", "hmm", "mm", "mhm", "er", "erm", "ah", "eh"})
SPELLED_OUT = {
    "mr": "mister",
    "mrs": "missus",
    "ms": "miss",
    "dr": "doctor",
    "st": "saint",
    "ok": "okay",
    "won't": "will not",
    "can't": "can not",
    "cannot": "can not",
    "shan't": "shall not",
    "ain't": "is not",
    "i'm": "i am",
    "let's": "let us",
}
CONTRACTION_ENDINGS = (("n't", " not"), ("'re", " are"), ("'ve", " have"), ("'ll", " will"),
                       ("'d", " would"))  # fmt: skip
AMERICAN = {
    "neighbour": "neighbor",
    "neighbours": "neighbors",
    "colour": "color",
    "favour": "favor",
    "favourite": "favorite",
    "honour": "honor",
    "centre": "center",
    "theatre": "theater",
    "cheque": "check",
    "organise": "organize",
    "realise": "realize",
    "cancelled": "canceled",
    "travelling": "traveling",
    "programme": "program",
    "licence": "license",
}
UNITS = {
    name: value
    for value, name in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
        ]
    )
}
TENS = {
    name: value * 10
    for value, name in enumerate(
        ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"], start=2
    )
}
SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}


def _spelled_out(word: str) -> str:
    if word in SPELLED_OUT:
        return SPELLED_OUT[word]
    for ending, replacement in CONTRACTION_ENDINGS:
        if word.endswith(ending) and len(word) > len(ending):
            return word[: -len(ending)] + replacement
    return AMERICAN.get(word, word)


def _numbers(tokens: list[str]) -> list[str]:
    """Runs of number words as the numbers they say ("forty five" -> "45", "four five" -> "4 5")."""
    out: list[str] = []
    total = current = 0
    last = ""  # kind of the previous number word: unit, tens, scale ('' outside a number)

    def close() -> None:
        nonlocal total, current, last
        if last:
            out.append(str(total + current))
        total = current = 0
        last = ""

    for token in tokens:
        if token in UNITS:
            value = UNITS[token]
            if last == "unit" or (last == "tens" and (value >= 10 or current % 10)):
                close()  # "four five": two numbers said one after the other
            current += value
            last = "unit"
        elif token in TENS:
            if last in ("unit", "tens"):
                close()
            current += TENS[token]
            last = "tens"
        elif token in SCALES and last:
            scale = SCALES[token]
            if scale == 100:
                current = max(1, current) * 100
            else:
                total += max(1, current) * scale
                current = 0
            last = "scale"
        elif token == "and" and last == "scale":
            continue  # "two hundred and five"
        else:
            close()
            out.append(token)
    close()
    return out


def normalize(text: str) -> str:
    """``text`` as it is compared for the word error rate."""
    text = text.lower().replace("\u2019", "'")
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)  # 1,000 -> 1000
    text = re.sub(r"\bo'\s*clock\b", "oclock", text)
    text = re.sub(r"[-_/]", " ", text)
    tokens: list[str] = []
    for word in WORD.findall(text):
        word = word.strip("'")
        if not word or word in FILLERS:
            continue
        tokens += _spelled_out(word).split()
    expanded: list[str] = []
    for token in _numbers(tokens):
        if token.isdigit():
            expanded += list(token)  # numbers are compared digit by digit
        else:
            expanded.append(token)
    return " ".join(expanded)


def words(text: str) -> list[str]:
    """The normalised words of ``text`` ("Eight o'clock." -> ["8", "o'clock"])."""
    return normalize(text).split()


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + insertions + deletions, words in the reference), both normalised."""
    ref, hyp = words(reference), words(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h))
        previous = current
    return previous[-1], len(ref)


def word_error_rate(reference: str, hypothesis: str) -> float:
    errors, count = word_errors(reference, hypothesis)
    return errors / max(1, count)
