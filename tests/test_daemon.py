"""`trunkline serve` as an operator runs it: a real process, real HTTP, real signals."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import cast

import pytest

from trunkline.daemon import freeze_startup_objects
from trunkline.runtime import Runtime


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, deadline_s: float = 20.0) -> tuple[int, bytes]:
    end = time.monotonic() + deadline_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return response.status, response.read()
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


@pytest.fixture
def daemon_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        TRUNKLINE_SIP_HOST="127.0.0.1",
        TRUNKLINE_SIP_PORT=str(free_port()),
        TRUNKLINE_HOST="127.0.0.1",
    )
    return env


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_serve_answers_healthz_and_exits_zero_on_signal(
    tmp_path: Path, daemon_env: dict[str, str], stop_signal: signal.Signals
) -> None:
    port = free_port()
    data_dir = tmp_path / "data"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trunkline",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        env=daemon_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        status, body = wait_http(f"http://127.0.0.1:{port}/healthz")
        assert status == 200
        assert json.loads(body) == {"status": "ok"}
        assert data_dir.is_dir()
        status, ready = wait_http(f"http://127.0.0.1:{port}/readyz")
        assert status == 200 and json.loads(ready)["status"] == "ready"
        status, metrics = wait_http(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and b"python_info" in metrics
        started = time.monotonic()
        process.send_signal(stop_signal)
        assert process.wait(timeout=5) == 0
        assert time.monotonic() - started < 2.0
        log = process.stderr.read().decode()  # type: ignore[union-attr]
        assert "Traceback" not in log, log  # e.g. an exception inside a loop callback
        assert "media speedups: " in log, log  # the start-up block says which media path runs
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()  # type: ignore[union-attr]
        process.stderr.close()  # type: ignore[union-attr]


def test_help_lists_every_environment_variable() -> None:
    from trunkline.config import ENV_PREFIX, SETTING_NAMES

    result = subprocess.run(
        [sys.executable, "-m", "trunkline", "--help"], capture_output=True, text=True, check=True
    )
    for name in (*SETTING_NAMES, "config"):
        assert f"{ENV_PREFIX}{name.upper()}" in result.stdout
    assert "TRUNKLINE_NO_SPEEDUPS" in result.stdout  # environment only, not a setting


def test_bad_setting_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    env = dict(os.environ, TRUNKLINE_HTTP_PORT="eighty")
    result = subprocess.run(
        [sys.executable, "-m", "trunkline", "serve", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert result.returncode == 2
    assert "TRUNKLINE_HTTP_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_tokens_made_by_the_cli_work_against_the_served_api(
    tmp_path: Path, daemon_env: dict[str, str]
) -> None:
    data_dir = tmp_path / "data"

    def cli(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "trunkline", *args, "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            env=daemon_env,
            timeout=60,
            check=True,
        )
        return result.stdout.split()[-1]

    org_id = cli("org", "create", "--name", "Acme")
    cli("identity", "create", "--org", org_id, "--handle", "sales")
    token = cli("token", "create", "--org", org_id)
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trunkline",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        env=daemon_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/phone/numbers", headers={"X-API-Key": token}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200 and json.loads(response.read()) == []
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_async_tests_run_on_the_production_event_loop() -> None:
    import uvloop

    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)


async def test_second_signal_hurries_the_drain_and_a_third_exits_at_once() -> None:
    from trunkline.daemon import FORCED_EXIT_CODE, ShutdownSignal

    exits: list[int] = []
    shutdown = ShutdownSignal(exit_now=exits.append)
    shutdown.trigger(signal.SIGINT)
    assert shutdown.requested.is_set() and not shutdown.hurried.is_set() and exits == []
    shutdown.trigger(signal.SIGINT)
    assert shutdown.hurried.is_set() and exits == []
    shutdown.trigger(signal.SIGTERM)
    assert exits == [FORCED_EXIT_CODE]


def test_start_up_objects_are_frozen_out_of_the_collector() -> None:
    before = gc.get_freeze_count()
    try:
        freeze_startup_objects(cast(Runtime, None), 0)
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()
