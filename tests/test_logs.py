"""What the process logs: signature and credential headers hidden at debug level, no
per-utterance chatter from faster-whisper at info."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from websockets.asyncio.server import ServerConnection, serve

from trunkline.agent.link import connect_agent
from trunkline.logs import configure_logging
from trunkline.webhooks import sign_headers


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("faster_whisper").setLevel(logging.NOTSET)


async def test_debug_log_of_the_agent_handshake_hides_the_signature(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("debug", "text")
    key = "whsec_" + "ab" * 32
    headers = {
        **sign_headers(key, "req-1", b"", 1_800_000_000),
        "Authorization": "Bearer tl_not-for-logs",
    }

    async def agent(connection: ServerConnection) -> None:
        await connection.wait_closed()

    async with serve(agent, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        link = await connect_agent(
            f"ws://127.0.0.1:{port}/agent",
            headers,
            lambda text: None,
            lambda code, reason: None,
            allow_private=True,
        )
        link.abort()
    logged = capsys.readouterr().err
    assert "> X-Inkbox-Request-ID: req-1" in logged  # the handshake is logged at debug …
    assert "> X-Inkbox-Signature: [redacted]" in logged  # … its secrets are not
    assert "> Authorization: [redacted]" in logged
    assert headers["X-Inkbox-Signature"] not in logged and "tl_not-for-logs" not in logged


def test_faster_whisper_is_quiet_unless_debugging(restore_logging: None) -> None:
    chatty = logging.getLogger("faster_whisper")
    configure_logging("info", "text")
    assert not chatty.isEnabledFor(logging.INFO) and chatty.isEnabledFor(logging.WARNING)
    configure_logging("debug", "text")
    assert chatty.isEnabledFor(logging.DEBUG)
