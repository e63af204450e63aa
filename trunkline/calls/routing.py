"""Where an inbound call goes: the number's own setting, its agent identity's, a fallback, voicemail.

Precedence (documented in docs/api.md, "Inbound call routing"):

1. A number that is not ``active`` (paused) rejects every call.
2. The **primary agent** is ``inbound_routing.agent_id`` when the number has
   one (registered numbers, seed 004), else the identity the number is
   assigned to.
3. The **number's own setting wins when it accepts calls**: if the number's
   ``incoming_call_action`` is ``auto_accept`` or ``webhook``, that action
   and the number's URLs are used. ``auto_reject`` is the default every new
   number starts with, so on the number it means "not configured here".
4. Otherwise the primary agent's identity configuration
   (``PUT /incoming-call-action``, seed 002) applies, if one is set.
5. Otherwise the call is rejected.
6. When the primary target rejects or cannot be reached, the
   ``inbound_routing.fallback`` agent's identity configuration is tried, then
   ``inbound_routing.voicemail_message`` is played and a message recorded;
   with neither, the call is rejected.

``resolve_inbound_route`` is pure; ``load_inbound_route`` fetches the
configurations it needs from the number store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from trunkline.storage.models import IncomingCallAction, IncomingCallConfig, PhoneNumber
from trunkline.storage.stores import NumberStore

RouteSource = Literal["number", "identity", "default"]
ACCEPTING_ACTIONS: frozenset[str] = frozenset({"auto_accept", "webhook"})


@dataclass(frozen=True, slots=True)
class RouteTarget:
    """One way to reach an agent: connect its WebSocket, or ask its webhook first."""

    action: IncomingCallAction  # "auto_accept" or "webhook"
    agent_identity_id: str | None
    client_websocket_url: str | None
    incoming_call_webhook_url: str | None
    source: RouteSource  # which setting produced it


@dataclass(frozen=True, slots=True)
class InboundRoute:
    """What to do with one inbound call, in order of preference.

    Try ``targets`` in order (the primary, then the fallback); when none can
    be reached, answer with ``voicemail_message`` if there is one, else
    reject. ``action`` is the primary decision as the API shows it.
    """

    action: IncomingCallAction
    targets: tuple[RouteTarget, ...]
    voicemail_message: str | None
    source: RouteSource

    @property
    def rejects(self) -> bool:
        """True when the call is to be refused outright (no agent, no voicemail)."""
        return not self.targets and self.voicemail_message is None


def _target(
    action: IncomingCallAction,
    agent_identity_id: str | None,
    websocket: str | None,
    webhook: str | None,
    source: RouteSource,
) -> RouteTarget | None:
    if action == "auto_accept" and websocket:
        return RouteTarget(action, agent_identity_id, websocket, webhook, source)
    if action == "webhook" and webhook:
        return RouteTarget(action, agent_identity_id, websocket, webhook, source)
    return None


def primary_agent_id(number: PhoneNumber) -> str | None:
    routing = number.inbound_routing
    if routing is not None and routing.agent_id:
        return routing.agent_id
    return number.agent_identity_id


def resolve_inbound_route(
    number: PhoneNumber,
    identity_config: IncomingCallConfig | None,
    *,
    fallback_config: IncomingCallConfig | None = None,
) -> InboundRoute:
    """Apply the precedence rules above.

    ``identity_config`` is the primary agent's configuration and
    ``fallback_config`` the fallback agent's (both None when unset).
    """
    if number.status != "active":
        return InboundRoute("auto_reject", (), None, "number")
    primary_id = primary_agent_id(number)
    primary: RouteTarget | None = None
    source: RouteSource = "default"
    if number.incoming_call_action in ACCEPTING_ACTIONS:
        primary = _target(
            number.incoming_call_action,
            primary_id,
            number.client_websocket_url,
            number.incoming_call_webhook_url,
            "number",
        )
        source = "number"
    elif identity_config is not None:
        primary = _target(
            identity_config.incoming_call_action,
            identity_config.agent_identity_id,
            identity_config.client_websocket_url,
            identity_config.incoming_call_webhook_url,
            "identity",
        )
        source = "identity"
    targets = [primary] if primary is not None else []
    routing = number.inbound_routing
    voicemail = None
    if routing is not None:
        voicemail = routing.voicemail_message or None
        if routing.fallback_agent_id and fallback_config is not None:
            fallback = _target(
                fallback_config.incoming_call_action,
                fallback_config.agent_identity_id,
                fallback_config.client_websocket_url,
                fallback_config.incoming_call_webhook_url,
                "identity",
            )
            if fallback is not None:
                targets.append(fallback)
    action: IncomingCallAction = primary.action if primary is not None else "auto_reject"
    return InboundRoute(action, tuple(targets), voicemail, source)


async def load_inbound_route(numbers: NumberStore, number: PhoneNumber) -> InboundRoute:
    """Fetch the primary and fallback agents' configurations and resolve the route."""
    primary_id = primary_agent_id(number)
    config = await numbers.get_incoming_call_config(primary_id) if primary_id else None
    routing = number.inbound_routing
    fallback_config = None
    if routing is not None and routing.fallback_agent_id:
        fallback_config = await numbers.get_incoming_call_config(routing.fallback_agent_id)
    return resolve_inbound_route(number, config, fallback_config=fallback_config)
