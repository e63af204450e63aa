"""Shared output for benchmarks: a printed table and a JSON file under benchmarks/results/.

Every figure a benchmark reports is measured in the same run as what it is
compared with, so the ratios hold on a noisy shared machine even when the
absolute numbers do not.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    return {
        "cpu_model": cpu_model(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }


def uncommitted_paths() -> list[str]:
    """Files under trunkline/ or benchmarks/ (results aside) that differ from the commit."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=normal", "--",
         "trunkline", "benchmarks", ":(exclude)benchmarks/results"],
        cwd=root, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        return ["(not a git checkout: the code measured cannot be named)"]
    return [line[3:] for line in done.stdout.splitlines() if line.strip()]


def source_revision() -> dict[str, Any]:
    """The commit measured, and whether the working tree differed from it."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    commit = done.stdout.strip() if done.returncode == 0 else ""
    return {"commit": commit or "unknown", "uncommitted_changes": bool(uncommitted_paths())}


def require_committed(allow_uncommitted: bool) -> None:
    """Stop before measuring when the code differs from its commit, unless allowed.

    Results name the commit they measured; figures from code that no commit
    holds cannot be reproduced, so they are refused unless
    ``--allow-uncommitted`` is given (and then marked in the result file).
    """
    dirty = uncommitted_paths()
    if not dirty:
        return
    listing = "\n  ".join(dirty[:20])
    if not allow_uncommitted:
        sys.exit(
            f"uncommitted changes under trunkline/ or benchmarks/:\n  {listing}\n"
            "commit them first, or pass --allow-uncommitted (results are then marked)"
        )
    sys.stderr.write(
        f"warning: measuring uncommitted code (results marked uncommitted_changes):\n  {listing}\n"
    )


def nearest_rank(count: int, fraction: float) -> int:
    """The index, in ``count`` ordered samples, of the nearest-rank percentile ``fraction``."""
    return min(count - 1, max(0, round(fraction * count + 0.5) - 1))


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1) of non-empty samples."""
    ordered = sorted(samples)
    return ordered[nearest_rank(len(ordered), fraction)]


def array_percentiles(samples: npt.NDArray[np.float64], fractions: Sequence[float]) -> list[float]:
    """Nearest-rank percentiles of a non-empty numpy array, by partial ordering.

    The same figures as :func:`percentile`, in a few milliseconds for the 10⁵–10⁶
    samples of a load step: a load generator that sorted them in Python would stall
    its own pacing for tens of milliseconds — a delay spike in the traffic it measures.
    """
    indexes = [nearest_rank(len(samples), fraction) for fraction in fractions]
    ordered = np.partition(samples, indexes)
    return [float(ordered[index]) for index in indexes]


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def spread(samples: Sequence[float]) -> dict[str, float]:
    """Median and min–max of one figure over several runs."""
    return {"median": median(samples), "min": min(samples), "max": max(samples)}


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def write_results(name: str, results: dict[str, Any], directory: Path = RESULTS_DIR) -> Path:
    """Write ``results`` with run metadata to ``<directory>/<name>.json``; return the path."""
    directory.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": name,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": " ".join(["python", "-m", f"benchmarks.{name}", *sys.argv[1:]]),
        **source_revision(),
        **results,
    }
    path = directory / f"{name}.json"
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    temporary.replace(path)
    print(f"\nwrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return path


def best_of(rounds: int, measure: Callable[[], float]) -> list[float]:
    """Run ``measure`` ``rounds`` times and return every result (callers take the median)."""
    return [measure() for _ in range(rounds)]
