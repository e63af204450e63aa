"""Fakes for media-session unit tests: an agent link and a speech worker pool run by hand."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from trunkline.agent.link import OP_BINARY
from trunkline.speech.workers import Batch, Done


class FakeLink:
    """What a media session uses of an ``AgentLink``: frames sent are noted."""

    def __init__(self, headers: dict[str, str] | None = None) -> None:
        self.response_headers = headers or {}
        self.sent: list[str] = []
        self.binary: list[bytes] = []  # binary frames sent (raw caller audio)
        self.on_binary: Callable[[bytes], None] | None = None
        self.on_overflow: Callable[[], None] | None = None
        self.open = True
        self.has_room = True
        self.dropped_frames = 0
        self.closed: tuple[int, str] | None = None

    def send_text(self, text: str, *, droppable: bool = False) -> bool:
        self.sent.append(text)
        return True

    def send_binary(self, data: bytes | memoryview, *, droppable: bool = False) -> bool:
        self.binary.append(bytes(data))
        return True

    def send_frame(self, opcode: int, data: bytes | memoryview, droppable: bool) -> bool:
        if opcode == OP_BINARY:
            return self.send_binary(data, droppable=droppable)
        return self.send_text(bytes(data).decode(), droppable=droppable)

    def close(self, code: int, reason: str) -> None:
        self.open = False
        self.closed = (code, reason)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(frame) for frame in self.sent]

    def named(self, event: str) -> list[dict[str, Any]]:
        return [frame for frame in self.events() if frame.get("event") == event]


class ManualPool:
    """A speech worker pool whose jobs run when the test says (on the test's thread)."""

    def __init__(self, *, capacity: int = 100) -> None:
        self.jobs: list[tuple[int, Callable[[], Any], Done]] = []
        self.capacity = capacity

    @property
    def idle(self) -> bool:
        return not self.jobs

    @property
    def queued(self) -> int:
        return len(self.jobs)

    def submit(self, priority: int, work: Callable[[], Any], done: Done) -> bool:
        if len(self.jobs) >= self.capacity:
            return False
        self.jobs.append((priority, work, done))
        return True

    def submit_batched(self, priority: int, batch: Batch, item: Any, done: Done) -> bool:
        return self.submit(priority, lambda: batch([item])[0], done)

    def run_next(self) -> None:
        _, work, done = self.jobs.pop(0)
        done(work(), None, 0.001)

    def run_all(self) -> None:
        while self.jobs:
            self.run_next()


class FakeSynthesizer:
    name = "fake"

    def __init__(self) -> None:
        self.spoken: list[str] = []

    def synthesize(self, text: str) -> Any:
        self.spoken.append(text)
        yield bytes([0x10 + len(self.spoken)]) * 320  # two frames per piece

    def load(self) -> None:
        return None
