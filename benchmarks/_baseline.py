"""A baseline for a benchmark: ``trunkline`` as committed at a git revision, ready to run.

``benchmarks.frame_cost --baseline REF`` and ``benchmarks.bridge --baseline REF`` run
the code before a change beside the code after it. The tree is extracted with
``git archive`` and its C extension built from its own sources: without one in the
tree, an editable install's finder hands the old Python the current
``trunkline._speedups`` (missing functions, or the new C under the old code's name).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def extract(revision: str, into: Path) -> Path:
    """``trunkline`` as committed at ``revision``, with the C extension built from its own
    sources: without one in the tree, the installed package's module would be imported
    beside the old Python (an editable install's finder supplies missing submodules)."""
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(
        ["git", "archive", revision, "trunkline", "setup.py"],
        cwd=root,
        capture_output=True,
        check=True,
    )
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    build = [sys.executable, "setup.py", "-q", "build_ext", "--inplace"]
    subprocess.run(build, cwd=into, check=True, capture_output=True)
    where = subprocess.run(
        [sys.executable, "-c", "import trunkline._speedups as m; print(m.__file__)"],
        env={**os.environ, "PYTHONPATH": str(into)},
        cwd=into,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not Path(where).resolve().is_relative_to(into.resolve()):
        sys.exit(f"the baseline imports a C extension from outside its tree: {where}")
    return into
