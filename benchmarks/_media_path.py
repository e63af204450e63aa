"""Which media path a measured ``trunkline serve`` runs: the C extension or its pure-Python twin.

``benchmarks.bridge`` and ``benchmarks.load`` run trunkline twice per round:
with the C extension (``trunkline._speedups``) and with ``TRUNKLINE_NO_SPEEDUPS=1``
(``trunkline._speedups_py``). A run's label is never taken on trust: the
process logs which implementation it chose at start-up (``media speedups: C
extension`` or ``media speedups: pure Python (why)``, ``trunkline.speedups``),
and :func:`confirm` reads that line from its log and refuses a run whose
process says otherwise — a C run without a built extension fails instead of
being published as C.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from trunkline.speedups import DISABLE_VARIABLE

KINDS = {"trunkline": "C extension", "pure_python": "pure Python"}  # run kind → implementation
LABELS = {"trunkline": "trunkline (C)", "pure_python": "trunkline (pure Python)"}
LOG_LEVEL = "info"  # the start-up line is logged at info
_LINE = re.compile(r"media speedups: (C extension|pure Python)")


class MislabelledRun(RuntimeError):
    """The process measured does not run the media path its run is labelled with."""


def environment(kind: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (the current environment by default) set up for a run of ``kind``."""
    env = dict(os.environ if base is None else base)
    env.pop(DISABLE_VARIABLE, None)
    if kind == "pure_python":
        env[DISABLE_VARIABLE] = "1"
    env["TRUNKLINE_LOG_LEVEL"] = LOG_LEVEL
    return env


def reported(log_text: str) -> list[str]:
    """The implementations the start-up lines in ``log_text`` name (one per process)."""
    return [match.group(1) for match in _LINE.finditer(log_text)]


def confirm(log_path: Path, kind: str, processes: int = 1, seconds: float = 30.0) -> str:
    """Wait for ``processes`` start-up lines in ``log_path``; each must name ``kind``'s path.

    Returns the implementation; raises :class:`MislabelledRun` when a process runs
    another one, or none said which within ``seconds``.
    """
    expected = KINDS[kind]
    deadline = time.monotonic() + seconds
    found: list[str] = []
    while time.monotonic() < deadline:
        found = reported(log_path.read_text(errors="replace")) if log_path.exists() else []
        if any(name != expected for name in found):
            break
        if len(found) >= processes:
            return expected
        time.sleep(0.1)
    raise MislabelledRun(
        f"a {kind} run must run the {expected} media path; its processes said {found or 'nothing'}"
        f" (log {log_path})"
    )
