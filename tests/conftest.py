"""Shared test fixtures and the rule that CI never skips silently."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvloop

from tests import postgres_server

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Tests that keep real time while loading every core (a cluster of daemons, bursts of calls
# or requests measured against a latency limit, speech models, a browser): marked
# ``real_time``. `make test` runs the others on pytest-xdist workers, then these alone, one
# after another, as a serial run would.
REAL_TIME_TESTS = (
    "tests/cluster/test_cluster.py",
    "tests/gateway/test_cluster_state.py",
    "tests/gateway/test_database_flood.py",
    "tests/gateway/test_transcript_flood.py",
    "tests/gateway/test_speech_calls.py",
    "tests/speech/test_incremental_whisper.py",
    "tests/gateway/test_sipp_carrier.py",
    "tests/console/test_console_browser.py",
)


def marked_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The values of the test's ``@pytest.mark.settings(...)`` markers (nearest wins).

    Settings are frozen once a process starts, so a test states the settings its
    trunkline needs up front instead of changing them on a running one.
    """
    values: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers("settings"))):
        values.update(marker.kwargs)
    return values


def require(condition: bool, reason: str) -> None:
    """Skip locally when a real component is missing; fail in CI, where it must be present."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True, scope="session")
def private_data_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test writes into the real home: the default data directory is a temporary one.

    Set in the environment, so the trunkline processes tests start inherit it too.
    """
    previous = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("xdg-data-home"))
    yield
    if previous is None:
        os.environ.pop("XDG_DATA_HOME", None)
    else:
        os.environ["XDG_DATA_HOME"] = previous


@pytest.hookimpl(tryfirst=True)  # before ``-m`` selects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(REAL_TIME_TESTS):
            item.add_marker(pytest.mark.real_time)


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Tests run on uvloop, the loop ``trunkline serve`` runs on (its transports differ)."""
    return {"uvloop": uvloop.new_event_loop}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The throwaway PostgreSQL cluster, if a test started one, goes with the session."""
    postgres_server.stop_cluster()
