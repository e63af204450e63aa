"""Combining several ramps: medians, majority-held steps, capacity per run, no extrapolation."""

from __future__ import annotations

from typing import Any

from benchmarks._ramps import (
    NOT_REACHED,
    calls_per_core,
    capacity,
    first_break,
    median_of,
    merge_steps,
    run_capacities,
)


def step(
    calls: int, cpu: float, loss: float = 0.0, broken: list[str] | None = None
) -> dict[str, Any]:
    return {
        "calls": calls,
        "cpu_percent_per_call": cpu,
        "memory_kb_per_call": 100.0,
        "loss": loss,
        "latency_to_agent_ms": {"p50": 1.0, "p99": cpu * 10},
        "broken": broken or [],
    }


def test_median_of_takes_medians_majorities_and_nested_figures() -> None:
    merged = median_of([
        {"a": 1.0, "flag": True, "nested": {"p99": 3.0}, "text": "x", "gone": None},
        {"a": 5.0, "flag": False, "nested": {"p99": None}, "text": "y", "gone": None},
        {"a": 2.0, "flag": True, "nested": {"p99": 9.0}, "text": "z", "gone": None},
    ])  # fmt: skip
    assert merged == {"a": 2.0, "flag": True, "nested": {"p99": 6.0}, "text": "x", "gone": None}


def test_merged_steps_are_medians_with_their_spread() -> None:
    runs = [[step(50, 0.3)], [step(50, 0.9)], [step(50, 0.5)]]
    [merged] = merge_steps(runs)
    assert merged["cpu_percent_per_call"] == 0.5  # the median, not the best run (0.3)
    assert merged["spread"]["cpu_percent_per_call"] == {"min": 0.3, "max": 0.9}
    assert merged["latency_to_agent_ms"]["p99"] == 5.0
    assert (merged["runs_measured"], merged["runs_held"], merged["broken"]) == (3, 3, [])


def test_a_step_holds_only_when_most_runs_held_it() -> None:
    runs = [
        [step(50, 0.3), step(100, 0.3)],
        [step(50, 0.3), step(100, 0.4, 0.004, ["loss 0.40 %"])],
        [step(50, 0.3, 0.003, ["loss 0.30 %"])],  # stopped before 100
    ]
    fifty, hundred = merge_steps(runs)
    assert fifty["broken"] == []  # 2 of 3 held
    assert hundred["runs_held"] == 1
    assert hundred["broken"] == ["loss 0.40 %", NOT_REACHED]


def test_capacity_is_per_run_and_the_median_run_is_published() -> None:
    runs = [
        [step(50, 0.3), step(100, 0.3), step(200, 0.3, 0.01, ["loss"])],
        [step(50, 0.3), step(100, 0.3), step(200, 0.3)],
        [step(50, 0.3, 0.01, ["loss"])],
    ]
    assert [capacity(run) for run in runs] == [100, 200, 0]
    assert run_capacities(runs) == {"per_run": [100, 200, 0], "median": 100, "min": 0, "max": 200}
    assert first_break(runs[0]) == ["loss"]
    assert first_break(runs[1]) == []


def test_calls_per_core_divides_carried_calls_and_never_extrapolates_from_cpu() -> None:
    # 100 calls held at 0.3 % of a core each: 100 % ÷ 0.3 % would claim 333 calls per core.
    capacities = run_capacities([[step(100, 0.3)], [step(100, 0.3)], [step(100, 0.3)]])
    assert calls_per_core(capacities, 1) == {"median": 100.0, "min": 100.0, "max": 100.0}
    assert calls_per_core(capacities, 2) == {"median": 50.0, "min": 50.0, "max": 50.0}
    assert calls_per_core(capacities, None) is None  # trunkline shared its cores
