"""A benchmark run's media path is the one its process says it runs, or the run fails."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks._media_path import KINDS, MislabelledRun, confirm, environment, reported
from tests.conftest import require


def test_each_kind_gets_its_environment() -> None:
    base = {"TRUNKLINE_NO_SPEEDUPS": "1", "PATH": "/bin"}
    assert "TRUNKLINE_NO_SPEEDUPS" not in environment("trunkline", base)
    assert environment("pure_python", {"PATH": "/bin"})["TRUNKLINE_NO_SPEEDUPS"] == "1"
    assert environment("trunkline", base)["TRUNKLINE_LOG_LEVEL"] == "info"


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_process_reports_the_path_its_environment_chose(kind: str, tmp_path: Path) -> None:
    """The line the benchmark reads is the one trunkline logs, in a fresh process per kind."""
    if kind == "trunkline":
        built = importlib.util.find_spec("trunkline._speedups") is not None
        require(built, "the C extension is built (python setup.py build_ext --inplace)")
    root = Path(__file__).resolve().parents[2]
    code = "from trunkline.speedups import describe; print(describe())"
    env = environment(kind) | {"PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    log = tmp_path / "trunkline.log"
    log.write_text("2026-12-02 INFO trunkline.daemon: " + done.stdout)
    assert confirm(log, kind, seconds=1) == KINDS[kind]


def test_a_run_whose_process_says_otherwise_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "trunkline.log"
    log.write_text(
        "x INFO trunkline.daemon: media speedups: pure Python (TRUNKLINE_NO_SPEEDUPS is set)\n"
    )
    assert reported(log.read_text()) == ["pure Python"]
    with pytest.raises(MislabelledRun):
        confirm(log, "trunkline", seconds=0.5)


def test_a_run_whose_process_never_says_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "trunkline.log"
    log.write_text("x INFO trunkline.daemon: started\n")
    with pytest.raises(MislabelledRun):
        confirm(log, "pure_python", seconds=0.3)


def test_every_worker_must_say_it(tmp_path: Path) -> None:
    log = tmp_path / "trunkline.log"
    log.write_text("a media speedups: C extension\nb media speedups: pure Python (x)\n")
    with pytest.raises(MislabelledRun):
        confirm(log, "trunkline", processes=2, seconds=0.3)
