"""Real human speech with transcripts, for the word error rate on voices no synthesizer made.

The clips are the test recordings that Debian's ``pocketsphinx-testdata``
package installs (BSD-2 licence, Carnegie Mellon University; the LibriVox
reading of *Sense and Sensibility* is in the public domain): five sentences
read by a LibriVox volunteer and five card names ("four queen of clubs")
said by a CMU speaker, 16 kHz mono. ``.ci/run`` installs the package; the
transcripts are read from the package's own files.
"""

from __future__ import annotations

import re
import wave
from dataclasses import dataclass
from pathlib import Path

DATA = Path("/usr/share/pocketsphinx/test/data")
SETS = (("librivox", "transcription"), ("cards", "cards.transcription"))
LINE = re.compile(r"^<s>(?P<text>.*)</s>\s*\((?P<id>[^)]+)\)\s*$")


@dataclass(frozen=True, slots=True)
class Clip:
    name: str
    text: str
    pcm16: bytes
    rate: int


def available(root: Path = DATA) -> bool:
    return all((root / folder / transcripts).is_file() for folder, transcripts in SETS)


def clips(root: Path = DATA) -> list[Clip]:
    """Every clip of the corpus, in a fixed order."""
    found: list[Clip] = []
    for folder, transcripts in SETS:
        for line in (root / folder / transcripts).read_text().splitlines():
            match = LINE.match(line.strip())
            if match is None:
                continue
            name = match["id"]
            with wave.open(str(root / folder / f"{name}.wav"), "rb") as wav:
                if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
                    raise ValueError(f"{name}: not 16-bit mono")
                pcm, rate = wav.readframes(wav.getnframes()), wav.getframerate()
            found.append(Clip(f"{folder}/{name}", " ".join(match["text"].split()), pcm, rate))
    return found
