"""An echo agent for trunkline: every caller hears themselves back.

It speaks the Inkbox media-stream protocol (docs/media-stream.md) as a plain
WebSocket server: its handshake answer turns trunkline's speech modes off, so it
receives the caller's audio as ``media`` frames (8 kHz mu-law, base64) and sends
each one straight back. Digits the caller presses are logged, and ``#`` ends the
call with a ``stop``. With ``--binary`` its handshake answer also accepts
trunkline's offer of binary media frames: the caller's audio then comes as
binary WebSocket frames of raw audio (no base64, no JSON), and goes back the
same way.

    python examples/echo_agent/agent.py --port 9000 [--binary]

Only needs ``websockets`` (installed with trunkline).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

log = logging.getLogger("echo_agent")


def audio_both_ways(connection: ServerConnection, request: Request, response: Response) -> None:
    """Ask for audio, not transcripts, and send audio, not text (both speech modes off)."""
    response.headers["X-Use-Inkbox-Speech-To-Text"] = "false"
    response.headers["X-Use-Inkbox-Text-To-Speech"] = "false"


def binary_audio_both_ways(
    connection: ServerConnection, request: Request, response: Response
) -> None:
    """As ``audio_both_ways``, and the caller's audio as binary frames when offered."""
    audio_both_ways(connection, request, response)
    if request.headers.get("X-Trunkline-Media-Frames") == "binary":
        response.headers["X-Trunkline-Media-Frames"] = "binary"


async def handle_call(connection: ServerConnection) -> None:
    context = connection.request.headers.get("X-Call-Context", "{}") if connection.request else "{}"
    log.info("call connected: %s", context)
    echoed = 0
    async for message in connection:
        if isinstance(message, bytes):  # raw audio in the call's format: echo it as it came
            await connection.send(message)
            if echoed == 0:
                log.info("caller audio arrives in binary frames")
            echoed += 1
            continue
        frame: dict[str, Any] = json.loads(message)
        event = frame.get("event")
        if event == "media":
            payload = frame["media"]["payload"]
            await connection.send(json.dumps({"event": "media", "media": {"payload": payload}}))
            echoed += 1
        elif event == "start":
            log.info("stream started: %s", frame.get("start", {}).get("media_format"))
        elif event == "dtmf":
            digit = frame["dtmf"]["digit"]
            log.info("caller pressed %s", digit)
            if digit == "#":
                await connection.send(json.dumps({"event": "stop", "reason": "caller pressed #"}))
        elif event == "stop":
            break
    log.info("call ended after %d echoed frames (%.1f s)", echoed, echoed * 0.02)


async def main(host: str, port: int, binary: bool) -> None:
    answer = binary_audio_both_ways if binary else audio_both_ways
    async with serve(handle_call, host, port, process_response=answer) as server:
        bound = server.sockets[0].getsockname()
        print(f"echo agent listening on ws://{bound[0]}:{bound[1]}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="trunkline example: echo the caller's audio")
    parser.add_argument("--host", default="127.0.0.1", help="listen address [127.0.0.1]")
    parser.add_argument("--port", type=int, default=9000, help="listen port [9000]")
    parser.add_argument(
        "--binary", action="store_true", help="take the caller's audio as binary frames"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C stops the agent
        asyncio.run(main(args.host, args.port, args.binary))
