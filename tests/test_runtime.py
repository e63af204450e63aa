"""The process's composition: components opened and closed in order, live flags shared."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import cast

import pytest

from trunkline.calls.control import CallControl
from trunkline.config import Settings
from trunkline.daemon import OutboxRun, started
from trunkline.outbox.worker import OutboxWorker
from trunkline.runtime import open_runtime
from trunkline.storage.blobs import LocalBlobStore


class RecordingOutbox:
    """Stands in for the outbox worker; records what the daemon asks of it."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._stopped = asyncio.Event()

    async def run(self) -> None:
        self.calls.append("run")
        await self._stopped.wait()

    def stop(self) -> None:
        self.calls.append("stop")
        self._stopped.set()

    async def flush(self, deadline_seconds: float) -> int:
        self.calls.append("flush")
        return 0


class Part:
    def __init__(self, log: list[str], name: str, fail: bool = False) -> None:
        self.log, self.name, self.fail = log, name, fail

    async def start(self) -> None:
        if self.fail:
            raise OSError(f"{self.name} cannot start")
        self.log.append(f"start {self.name}")

    async def close(self) -> None:
        self.log.append(f"close {self.name}")


async def test_open_runtime_opens_every_component_and_closes_them(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    async with open_runtime(settings) as runtime:
        assert await runtime.repository.ping()
        assert isinstance(runtime.blob_store, LocalBlobStore)
        assert not runtime.http.closed
        assert (settings.data_dir.stat().st_mode & 0o777) == 0o700
        assert runtime.sip_address is None and runtime.call_control.current is None
    assert runtime.http.closed


async def test_the_gateway_view_reads_the_live_flags(tmp_path: Path) -> None:
    async with open_runtime(Settings(data_dir=tmp_path / "data")) as runtime:
        services = runtime.gateway_services()
        assert not services.draining and services.call_control is None
        runtime.draining.begin()
        control = cast(CallControl, object())
        runtime.call_control.current = control
        assert services.draining and services.call_control is control
        assert services.repository is runtime.repository and services.http is runtime.http


async def test_an_outbox_that_never_ran_is_left_alone() -> None:
    outbox = RecordingOutbox()
    async with OutboxRun(cast(OutboxWorker, outbox)):
        pass
    assert outbox.calls == []


async def test_a_running_outbox_is_stopped_then_flushed() -> None:
    outbox = RecordingOutbox()
    async with OutboxRun(cast(OutboxWorker, outbox)) as run:
        run.start()
        await asyncio.sleep(0)
    assert outbox.calls == ["run", "stop", "flush"]


async def test_started_parts_close_in_reverse_and_a_failed_start_is_not_closed() -> None:
    log: list[str] = []
    with pytest.raises(OSError):
        async with (
            started(Part(log, "first")),
            started(Part(log, "second")),
            started(Part(log, "broken", fail=True)),
        ):
            pass
    assert log == ["start first", "start second", "close second", "close first"]
