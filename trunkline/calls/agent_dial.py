"""Dialling a call's agent WebSocket: the call context, its signature, and how it closed."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from trunkline import metrics
from trunkline.agent.inkbox_protocol import BINARY_MEDIA, MEDIA_FRAMES_HEADER
from trunkline.agent.link import AgentConnectError, AgentLink, connect_agent
from trunkline.calls.identity_signature import IdentitySigner
from trunkline.calls.live_call import LiveCall
from trunkline.config import Settings

log = logging.getLogger("trunkline.sip")
AGENT_CONNECT_SECONDS = 5.0


class AgentDialer:
    """Connects agent links for calls; ``on_lost`` hears when a call's current link closes.

    It gets the agent's close code, or None when the connection ended without
    a close frame.
    """

    def __init__(
        self,
        signer: IdentitySigner,
        on_lost: Callable[[LiveCall, int | None], None],
        settings: Settings,
    ) -> None:
        self._signer = signer
        self._on_lost = on_lost
        self._settings = settings  # ``allow_private_targets``, read per dial

    async def dial(
        self,
        call: LiveCall,
        url: str,
        *,
        attempt: int = 1,
        connect_seconds: float = AGENT_CONNECT_SECONDS,
    ) -> AgentLink | None:
        """One connection attempt (number ``attempt``); None when the agent cannot be reached."""
        record = call.lifecycle.record
        context = json.dumps(
            {
                "call_id": record.id,
                "phone_number": record.local_phone_number,
                "remote_phone_number": record.remote_phone_number,
                "direction": record.direction,
            }
        )
        headers = {"X-Call-Context": context}
        if call.agent_protocol == "inkbox":  # the Twilio persona keeps Twilio's JSON frames
            headers[MEDIA_FRAMES_HEADER] = BINARY_MEDIA  # offered; the agent's 101 decides
        headers.update(
            await self._signer.headers(
                call.lifecycle.agent_identity_id, record.id, context.encode()
            )
        )

        def on_text(text: str) -> None:
            if call.bridge is not None:  # frames before the bridge exists are not media yet
                call.bridge.agent_text(text)

        connected: list[AgentLink] = []

        def on_closed(code: int | None, reason: str) -> None:
            bridge = call.bridge
            if bridge is not None and connected and bridge.link is not connected[0]:
                return  # an earlier link, already replaced
            self._on_lost(call, code)

        started = time.perf_counter()
        try:
            link = await connect_agent(
                url,
                headers,
                on_text,
                on_closed,
                allow_private=self._settings.allow_private_targets,
                connect_seconds=connect_seconds,
            )
        except AgentConnectError as exc:
            log.info(
                "agent connect attempt %d failed: %s", attempt, exc, extra={"call_id": record.id}
            )
            return None
        connected.append(link)
        metrics.AGENT_CONNECT.observe(time.perf_counter() - started)
        return link

    async def dial_with_retry(self, call: LiveCall, url: str) -> AgentLink | None:
        """Two attempts unless the call is canceled in between."""
        for attempt in (1, 2):
            link = await self.dial(call, url, attempt=attempt)
            if link is not None or call.canceled:
                return link
        return None
