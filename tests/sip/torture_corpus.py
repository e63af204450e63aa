"""The RFC 4475 torture corpus in ``tests/sip/torture/``: each message and the answer it gets."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

DIRECTORY = Path(__file__).parent / "torture"


@dataclass(frozen=True, slots=True)
class TortureCase:
    name: str
    section: str
    title: str
    data: bytes
    answer: int | None  # the final status sent back; None: nothing is sent
    dropped: bool  # counted as malformed

    @property
    def is_request(self) -> bool:
        return not self.data.startswith(b"SIP/")

    @property
    def method(self) -> str:
        return self.data.split(b" ", 1)[0].decode()


def load_corpus() -> list[TortureCase]:
    expected = tomllib.loads((DIRECTORY / "expected.toml").read_text())
    cases = []
    for name, entry in expected.items():
        answer = entry["answer"]
        cases.append(
            TortureCase(
                name=name,
                section=entry["section"],
                title=entry["title"],
                data=(DIRECTORY / f"{name}.sip").read_bytes(),
                answer=None if answer == "none" else int(answer),
                dropped=bool(entry.get("dropped", False)),
            )
        )
    return cases


CORPUS = load_corpus()
