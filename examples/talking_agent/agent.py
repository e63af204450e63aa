"""A talking agent for trunkline: it greets the caller and answers in words.

It needs no speech libraries of its own. Its WebSocket handshake leaves
trunkline's speech modes on (docs/speech.md): trunkline transcribes the caller
and sends ``transcript`` frames, and speaks the ``text`` frames this agent sends
with its own text-to-speech engine. The agent itself only handles text:

- on ``start`` it greets the caller;
- on each final ``transcript`` it answers (``You said: ...``; the time when
  asked for it; a goodbye, then hangs up, when the caller says bye);
- on each ``dtmf`` digit it says which key was pressed (``#`` says goodbye).

    python examples/talking_agent/agent.py --port 9000

Only needs ``websockets`` (installed with trunkline).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

log = logging.getLogger("talking_agent")

GREETING = "Hello! This is the trunkline example agent. Say something, or press a key."
GOODBYE = "Goodbye!"
GOODBYE_MARK = "goodbye"


def speech_modes_on(connection: ServerConnection, request: Request, response: Response) -> None:
    """Transcripts in, text out: trunkline does the listening and the speaking."""
    response.headers["X-Use-Inkbox-Speech-To-Text"] = "true"
    response.headers["X-Use-Inkbox-Text-To-Speech"] = "true"


def reply_to(words: str) -> str:
    """What the agent answers to a caller's finished sentence."""
    lowered = words.lower()
    if "bye" in lowered:
        return GOODBYE
    if "time" in lowered:
        return f"It is {time.strftime('%H:%M')}."
    return f"You said: {words.strip()}"


async def say(connection: ServerConnection, text: str) -> None:
    """Send one reply; trunkline starts speaking it before ``done`` arrives."""
    log.info("agent says: %s", text)
    await connection.send(json.dumps({"event": "text", "delta": text}))
    await connection.send(json.dumps({"event": "text", "done": True}))


async def say_goodbye(connection: ServerConnection) -> None:
    """Say goodbye, then hang up once it has been played (the mark comes back then)."""
    await say(connection, GOODBYE)
    await connection.send(json.dumps({"event": "mark", "mark": {"name": GOODBYE_MARK}}))


async def handle_call(connection: ServerConnection) -> None:
    log.info("call connected")
    async for message in connection:
        if isinstance(message, bytes):
            continue  # audio: not sent to an agent in speech-to-text mode
        frame: dict[str, Any] = json.loads(message)
        event = frame.get("event")
        if event == "start":
            await say(connection, GREETING)
        elif event == "transcript" and frame.get("is_final"):
            heard = str(frame.get("text", ""))
            log.info("caller said: %s", heard)
            if not heard.strip():
                continue
            answer = reply_to(heard)
            if answer == GOODBYE:
                await say_goodbye(connection)
            else:
                await say(connection, answer)
        elif event == "dtmf":
            digit = frame["dtmf"]["digit"]
            log.info("caller pressed %s", digit)
            if digit == "#":
                await say_goodbye(connection)
            else:
                await say(connection, f"You pressed {digit}.")
        elif event == "mark" and frame.get("mark", {}).get("name") == GOODBYE_MARK:
            await connection.send(json.dumps({"event": "stop", "reason": "said goodbye"}))
        elif event == "stop":
            break
    log.info("call ended")


async def main(host: str, port: int) -> None:
    async with serve(handle_call, host, port, process_response=speech_modes_on) as server:
        bound = server.sockets[0].getsockname()
        print(f"talking agent listening on ws://{bound[0]}:{bound[1]}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="trunkline example: an agent that talks back")
    parser.add_argument("--host", default="127.0.0.1", help="listen address [127.0.0.1]")
    parser.add_argument("--port", type=int, default=9000, help="listen port [9000]")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C stops the agent
        asyncio.run(main(args.host, args.port))
