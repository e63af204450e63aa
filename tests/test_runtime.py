"""The process's composition: components opened and closed in order, live flags shared."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import cast

import pytest
from aiohttp.test_utils import TestClient, TestServer

from trunkline.config import Settings, settings_from
from trunkline.daemon import OutboxRun, build_gateway, control_app, started
from trunkline.gateway.call_control import GatewayCallControl
from trunkline.gateway.carrier_stream_routes import TELNYX_TOKEN_HEADER
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


async def test_the_gateway_and_its_routes_read_the_live_flags(tmp_path: Path) -> None:
    settings = settings_from({"data_dir": tmp_path / "data", "telnyx_stream_token": "stream-token"})
    async with open_runtime(settings) as runtime:
        gateway = build_gateway(runtime)
        assert gateway.call_store is runtime.repository
        assert gateway.number_store is runtime.repository
        stream = "/carrier/telnyx/media-stream"
        headers = {TELNYX_TOKEN_HEADER: "stream-token"}
        async with TestClient(TestServer(control_app(runtime))) as client:
            response = await client.get(stream, headers=headers)
            assert response.status == 503  # no gateway in the slot yet
            assert "not running" in (await response.json())["detail"]
            runtime.call_control.current = GatewayCallControl(gateway, settings)
            response = await client.get(stream, headers=headers)
            assert response.status == 400  # found the gateway; not a WebSocket upgrade
            runtime.draining.begin()
            response = await client.get(stream, headers=headers)
            assert response.status == 503
            assert "Draining" in (await response.json())["detail"]


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
