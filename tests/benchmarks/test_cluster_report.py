"""benchmarks.report's scale-out section, and the table it puts into docs/scaling.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks import report


def result(share: bool, generators_share: bool = False, scaling: float = 1.9) -> dict[str, Any]:
    run = {
        "1": {"database_per_call": {"xact_commit": 15.0},
              "steps": [{"calls": 300, "broken": []}, {"calls": 400, "broken": ["loss 0.20 %"],
                         "node_drops": {"jitter_late": 12, "jitter_shrink": 0}}]},
        "2": {"database_per_call": {"xact_commit": 16.0},
              "steps": [{"calls": 600, "broken": []}]},
    }  # fmt: skip
    spread = {"median": scaling, "min": scaling - 0.1, "max": scaling + 0.1}
    cpu = {"nodes": 80.0, "carrier": 30.0, "agent": 10.0, "kamailio": 4.0, "postgres": 16.0}
    return {
        "measured_at": "2026-12-02T10:00:00+00:00", "commit": "abc123", "command": "python -m benchmarks.cluster",
        "machine": {"cpus": 4}, "runs_count": 1, "node_cores": [[0], [1]],
        "cores": {"system_under_test": [0, 1], "load_generators": [2, 3]},
        "load_average": {"min": 1.25, "max": 3.5},
        "nodes_share_a_core": share, "generators_share_node_cores": generators_share,
        "layout": {"name": "separate cores", "node_cores": [[0], [1]], "shared_cores": [2, 3],
                   "summary": "each node on a core of its own (0, 1)"},
        "settings": {"setup_calls": 300, "in_flight": 40, "steps": "100,200", "hold_seconds": 8.0},
        "objectives": {"max_loss": 0.001, "max_round_trip_p99_ms": 60.0},
        "summary": {
            "1_nodes": {"calls_per_second": {"median": 50.0, "min": 50.0, "max": 50.0},
                        "capacity_calls": {"median": 300, "min": 300, "max": 300},
                        "cpu_at_capacity": cpu},
            "2_nodes": {"calls_per_second": {"median": 95.0, "min": 95.0, "max": 95.0},
                        "capacity_calls": {"median": 600, "min": 600, "max": 600},
                        "cpu_during_setup": cpu},
            "scaling": {"calls_per_second": spread, "capacity_calls": spread, "target": 1.8},
        },
        "runs": [run],
    }  # fmt: skip


def test_the_section_shows_both_clusters_the_ratio_and_a_shared_core() -> None:
    text = report.cluster_section(result(share=True))
    assert "| 1 node | 50.0" in text and "| 2 nodes | 95.0" in text
    assert "**2 nodes ÷ 1 node** | 1.90" in text
    assert "shared one core" in text
    assert "shared one core" not in report.cluster_section(result(share=False))


def test_the_section_says_where_everything_ran_and_the_cpu_of_each_part() -> None:
    text = report.cluster_section(result(share=False, generators_share=True))
    assert "each node on a core of its own (0, 1)" in text
    assert "understates" in text  # the generators competed with node B
    assert "understates" not in report.cluster_section(result(share=False))
    assert "load average was 1.2–3.5 (4 CPUs)" in text
    # nodes / carrier + agent / Kamailio + PostgreSQL, at the step held and during set-up
    assert "| 1 node | 50.0 (50.0–50.0) | 300 (300–300) | – | 80 / 40 / 20 (all 140) |" in text
    assert "| 2 nodes | 95.0 (95.0–95.0) | 600 (600–600) | 80 / 40 / 20 (all 140) | – |" in text
    assert "out of the machine's 400 %" in text
    assert "- 1 node: 400 calls (loss 0.20 %; the nodes dropped: jitter late 12)" in text
    assert "- 2 nodes: never (the top step held)" in text


def test_the_target_is_said_to_be_met_only_when_the_median_reaches_it() -> None:
    assert "1.90× (meets the 1.8× target)" in report.cluster_section(result(share=False))
    below = report.cluster_section(result(share=False, scaling=1.2))
    assert "1.20× (below the 1.8× target)" in below and "meets" not in below
    just_below = report.cluster_section(result(share=False, scaling=1.797))
    assert "1.797× (below the 1.8× target)" in just_below  # not "1.80× (below ...)"
    none_held = result(share=False)
    none_held["summary"]["scaling"]["capacity_calls"] = None
    assert "calls held not measured" in report.cluster_section(none_held)


def test_the_table_replaces_what_was_between_the_markers_of_scaling_md(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = tmp_path / "scaling.md"
    doc.write_text(f"intro\n{report.SCALING_START}\nold\n{report.SCALING_END}\nafter\n")
    monkeypatch.setattr(report, "SCALING_DOC", doc)
    report.update_scaling(result(share=False))
    text = doc.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{report.SCALING_END}\nafter\n")
    assert "old" not in text and "| 2 nodes | 95.0" in text and "`abc123`" in text
    assert "Median scaling efficiency" in text


def test_scaling_md_has_the_markers() -> None:
    text = report.SCALING_DOC.read_text()
    assert text.index(report.SCALING_START) < text.index(report.SCALING_END)


def test_a_quota_layout_the_set_up_limits_and_the_machines_share_are_said() -> None:
    quota = result(share=False, generators_share=True)
    quota["layout"] |= {"node_cpu_percent": 35.0, "summary": "node i on core i (0, 1)"}
    quota["objectives"] |= {"jitter_max_ms": 60, "max_machine_busy_percent": 95.0}
    quota["setup_hangs_up_on_answer"] = True
    quota["summary"]["2_nodes"]["machine_during_setup"] = 62.4
    quota["runs"][0]["1"]["setup_limited_by"] = "the nodes' CPU quota (ran out in 99+ % of periods)"
    text = report.cluster_section(quota)
    assert "CPU quota of 35 % of its core" in text and "understates" not in text
    assert "each hung up as soon as it is answered" in text
    assert "(60 ms and the 60 ms the nodes' caller jitter buffer may hold)" in text
    assert "machine no more than 95 % busy" in text
    assert "80 / 40 / 20 (all 140); machine 62 % busy" in text
    assert "- 1 node: the nodes' CPU quota (ran out in 99+ % of periods)" in text
