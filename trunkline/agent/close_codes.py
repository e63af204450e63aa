"""What the way an agent's WebSocket closed says about its call.

An agent that closes its socket with a close frame meant to: the call ends,
as it does on Twilio when a media stream's socket closes (pipecat's
``EndFrame`` closes with 1000). Only a connection that failed is redialled:
no close frame at all (a reset, a crash, a network cut — 1006 on the wire's
terms), 1011 (the agent hit an internal error) and 1012 (the agent's service
is restarting). 1001 ("going away") is a deliberate close — a server leaving
on purpose — so it ends the call like 1000; so do 1005 (a close frame without
a code) and every other code, 4000–4999 included.
"""

from __future__ import annotations

NO_CLOSE_FRAME = 1006
REDIAL_CODES = frozenset({NO_CLOSE_FRAME, 1011, 1012})


def agent_hung_up(close_code: int | None) -> bool:
    """True when the close ends the call; False when the agent is to be redialled.

    ``None`` means the connection ended without a close frame.
    """
    return close_code is not None and close_code not in REDIAL_CODES


def describe_close(close_code: int | None) -> str:
    return "no close frame" if close_code is None else f"close code {close_code}"
