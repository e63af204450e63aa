"""The signed ``phone.incoming_call`` webhook: the agent's owner answers (with a URL) or rejects."""

from __future__ import annotations

import json
import logging

import aiohttp

from trunkline.calls.identity_signature import IdentitySigner
from trunkline.calls.routing import RouteTarget
from trunkline.config import Settings
from trunkline.storage.models import Call
from trunkline.storage.stores import IdentityStore
from trunkline.webhooks.ssrf import UnsafeTarget, check_url_literal

log = logging.getLogger("trunkline.sip")
INCOMING_WEBHOOK_SECONDS = 5.0


class CallDeclined(Exception):
    """The incoming-call webhook answered ``{"action": "reject"}``."""


class IncomingCallWebhook:
    def __init__(
        self,
        repository: IdentityStore,
        signer: IdentitySigner,
        http: aiohttp.ClientSession,
        settings: Settings,
    ) -> None:
        self._repository = repository
        self._signer = signer
        self._http = http
        self._settings = settings  # ``allow_private_targets``, read per call

    async def ask(self, record: Call, target: RouteTarget) -> str | None:
        """POST ``phone.incoming_call``: the agent URL to dial, or None when there is no decision.

        Raises ``CallDeclined`` when the reply rejects the call.
        """
        assert target.incoming_call_webhook_url is not None
        identities = []
        if target.agent_identity_id:
            identity = await self._repository.get_identity(target.agent_identity_id)
            if identity is not None:
                identities.append(
                    {
                        "id": identity.id,
                        "agent_handle": identity.agent_handle,
                        "display_name": identity.display_name,
                    }
                )
        body = json.dumps(
            {
                "event_type": "phone.incoming_call",
                "id": record.id,
                "local_phone_number": record.local_phone_number,
                "remote_phone_number": record.remote_phone_number,
                "direction": "inbound",
                "status": record.status,
                "phone_number_id": record.phone_number_id,
                "agent_identities": identities,
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        headers.update(await self._signer.headers(target.agent_identity_id, record.id, body))
        try:
            check_url_literal(
                target.incoming_call_webhook_url,
                allow_private=self._settings.allow_private_targets,
            )
            async with self._http.post(
                target.incoming_call_webhook_url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=INCOMING_WEBHOOK_SECONDS),
            ) as response:
                if response.status // 100 != 2:
                    return None
                reply = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError, OSError, UnsafeTarget) as exc:
            # A URL the guard refuses is an unreachable webhook: the next target, voicemail or 480.
            log.info("incoming-call webhook failed: %s", exc, extra={"call_id": record.id})
            return None
        if isinstance(reply, dict) and reply.get("action") == "reject":
            raise CallDeclined
        if not isinstance(reply, dict) or reply.get("action") != "answer":
            log.info("incoming-call webhook gave no decision", extra={"call_id": record.id})
            return None
        url = reply.get("client_websocket_url") or target.client_websocket_url
        return url if isinstance(url, str) else None
