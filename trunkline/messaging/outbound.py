"""Sending SMS: through Telnyx's messaging API when configured, else delivered locally.

The local sender is the embedded default: a text to another number active on
this server arrives there as an inbound text; any other recipient is recorded
as ``sent_locally`` (no carrier to hand it to).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from trunkline.messaging.carrier_formats import InboundMessage
from trunkline.messaging.ingress import TextIngress
from trunkline.storage.models import new_id


class SendError(Exception):
    """The carrier refused or could not be reached (the API answers 502)."""


@dataclass(frozen=True, slots=True)
class SendResult:
    carrier: str
    carrier_message_id: str
    delivery_status: str


class TextSender(Protocol):
    async def send(self, from_number: str, to_number: str, text: str) -> SendResult: ...


class TelnyxMessagingClient:
    """``POST {base}/v2/messages`` with the account's API key."""

    def __init__(self, base_url: str, api_key: str, session: aiohttp.ClientSession) -> None:
        self._url = base_url.rstrip("/") + "/v2/messages"
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=15)

    async def send(self, from_number: str, to_number: str, text: str) -> SendResult:
        body = {"from": from_number, "to": to_number, "text": text}
        try:
            async with self._session.post(
                self._url, json=body, headers=self._headers, timeout=self._timeout
            ) as response:
                document: Any = await response.json(content_type=None)
                if response.status >= 400:
                    raise SendError(_telnyx_error(response.status, document))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise SendError(f"Telnyx messaging request failed: {type(exc).__name__}") from None
        try:
            data = document["data"]
            message_id = str(data["id"])
            recipients = data.get("to") or [{}]
            status = str(recipients[0].get("status") or "queued")
        except (KeyError, TypeError, IndexError, AttributeError):
            raise SendError("Telnyx answered without a message id") from None
        return SendResult("telnyx", message_id, status)


def _telnyx_error(status: int, document: Any) -> str:
    try:
        first = document["errors"][0]
        return f"Telnyx answered {status}: {first.get('title')} {first.get('detail') or ''}".strip()
    except (KeyError, TypeError, IndexError):
        return f"Telnyx answered {status}"


class LocalTextSender:
    def __init__(self, ingress: TextIngress, numbers_here: Any) -> None:
        self._ingress = ingress
        self._numbers_here = numbers_here  # async (e164) -> PhoneNumber | None

    async def send(self, from_number: str, to_number: str, text: str) -> SendResult:
        message_id = new_id()
        if await self._numbers_here(to_number) is None:
            return SendResult("local", message_id, "sent_locally")
        await self._ingress.receive(
            InboundMessage("local", message_id, from_number, to_number, text)
        )
        return SendResult("local", message_id, "delivered")
