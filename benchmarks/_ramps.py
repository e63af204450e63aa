"""Several ramps of one profile, combined: the median step, its spread, capacity per run.

``benchmarks.load`` ramps each profile ``--runs`` times. A ramp is a list of
steps (one dict per number of concurrent calls), each judged against the
service objectives (``broken``: the reasons it missed them, empty when it
held). What is published is the median, never the best run:

- each step's figures are the medians over the runs that measured it, with
  the min–max of the headline figures under ``spread``;
- a step *held* when a majority of all runs held it (a run that stopped its
  ramp before the step counts as not holding it);
- capacity is measured per run (the last step before the run's first broken
  one) and published as the median run's, with min–max;
- calls per core divides a run's capacity by the cores trunkline had to
  itself — a load it carried within the objectives, never an extrapolation
  from the CPU time of a lower step.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

SPREAD_FIGURES = ("cpu_percent_per_call", "memory_kb_per_call", "loss")
NOT_REACHED = "not reached: the ramp stopped at an earlier step"


def median_of(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Field by field: the median of numbers, the majority of flags, nested dicts alike.

    Other values (text, lists) are taken from the first record; a figure missing
    (None) in some records is the median of the others, None when all miss it.
    """
    merged: dict[str, Any] = {}
    keys = list(dict.fromkeys(key for record in records for key in record))
    for key in keys:
        values = [record.get(key) for record in records]
        present = [value for value in values if value is not None]
        if not present:
            merged[key] = None
        elif all(isinstance(value, bool) for value in present):
            merged[key] = sum(present) * 2 > len(present)
        elif all(isinstance(value, int | float) for value in present):
            merged[key] = statistics.median(present)
        elif all(isinstance(value, dict) for value in present):
            merged[key] = median_of(present)
        else:
            merged[key] = present[0]
    return merged


def merge_steps(runs: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The median ramp of ``runs`` (see the module's docstring)."""
    counts = sorted({step["calls"] for run in runs for step in run})
    merged = []
    for calls in counts:
        measured = [step for run in runs for step in run if step["calls"] == calls]
        step = median_of([{k: v for k, v in s.items() if k != "broken"} for s in measured])
        step["calls"] = calls
        step["runs_measured"] = len(measured)
        step["spread"] = {
            figure: {
                "min": min(s[figure] for s in measured),
                "max": max(s[figure] for s in measured),
            }
            for figure in SPREAD_FIGURES
            if all(s.get(figure) is not None for s in measured)
        }
        if all("broken" in s for s in measured):
            held = sum(1 for s in measured if not s["broken"])
            step["runs_held"] = held
            reasons = list(dict.fromkeys(r for s in measured for r in s["broken"]))
            if len(measured) < len(runs):
                reasons.append(NOT_REACHED)
            step["broken"] = [] if held * 2 > len(runs) else reasons
        merged.append(step)
    return merged


def capacity(steps: Sequence[dict[str, Any]]) -> int:
    """Calls at the last step before the first that broke the objectives (0: none held)."""
    good = 0
    for step in steps:
        if step["broken"]:
            break
        good = step["calls"]
    return good


def first_break(steps: Sequence[dict[str, Any]]) -> list[str]:
    """Why one ramp stopped counting: the reasons of its first broken step."""
    return next((list(step["broken"]) for step in steps if step["broken"]), [])


def run_capacities(runs: Sequence[Sequence[dict[str, Any]]]) -> dict[str, Any]:
    """Capacity per run, and the median run's (a measured step, not a mean of two)."""
    values = [capacity(run) for run in runs]
    return {
        "per_run": values,
        "median": statistics.median_low(values),
        "min": min(values),
        "max": max(values),
    }


def calls_per_core(capacities: dict[str, Any], cores: int | None) -> dict[str, float] | None:
    """Capacity ÷ the cores trunkline had to itself; None when it shared them (no pinning)."""
    if not cores:
        return None
    return {key: capacities[key] / cores for key in ("median", "min", "max")}
