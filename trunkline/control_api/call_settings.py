"""The incoming-call triple (action, WebSocket URL, webhook URL) and its consistency rules.

Seeds 001/002: ``auto_accept`` needs a ``client_websocket_url`` (wss://),
``webhook`` needs an ``incoming_call_webhook_url`` (https://); ``null``
clears a URL. The rules are checked on the state after a partial update is
merged, so a PATCH that only changes the action is accepted when the stored
URL already satisfies it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trunkline.config import Settings
from trunkline.control_api.errors import ApiError
from trunkline.control_api.urls import check_url
from trunkline.storage.models import IncomingCallAction

WS_REQUIRED = 'client_websocket_url is required when incoming_call_action is "auto_accept"'
WEBHOOK_REQUIRED = 'incoming_call_webhook_url is required when incoming_call_action is "webhook"'


@dataclass(frozen=True, slots=True)
class CallSettings:
    incoming_call_action: IncomingCallAction
    client_websocket_url: str | None
    incoming_call_webhook_url: str | None


def merge_call_settings(
    current: CallSettings, changes: Mapping[str, Any], settings: Settings
) -> CallSettings:
    """Apply the present keys of ``changes``; raise ApiError(422) when the result is invalid."""
    websocket = changes.get("client_websocket_url", current.client_websocket_url)
    webhook = changes.get("incoming_call_webhook_url", current.incoming_call_webhook_url)
    action = changes.get("incoming_call_action", current.incoming_call_action)
    if "client_websocket_url" in changes and websocket is not None:
        check_url(websocket, "websocket", settings, "client_websocket_url")
    if "incoming_call_webhook_url" in changes and webhook is not None:
        check_url(webhook, "webhook", settings, "incoming_call_webhook_url")
    if action == "auto_accept" and websocket is None:
        raise ApiError(422, WS_REQUIRED)
    if action == "webhook" and webhook is None:
        raise ApiError(422, WEBHOOK_REQUIRED)
    return CallSettings(action, websocket, webhook)
