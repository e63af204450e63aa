"""Bring your own number (seed 004): register an existing number with its SIP trunk.

``POST /numbers/register`` stores the number, the carrier (``provider``), the
trunk (``provider_config``: ``trunk_address`` host[:port], ``auth_username``,
``auth_password``; ``register: true`` to keep a SIP registration for the number
at ``registrar``, default the trunk address) and optional ``inbound_routing`` (primary agent,
``fallback`` agent, ``voicemail_message``). Agents are named by identity id or
handle and stored as identity ids. The trunk password is encrypted with the
server's secret key before it is stored; responses only say whether one is
set, and it is never logged.

``PATCH /numbers/{id}`` merges ``provider_config`` and ``inbound_routing``
field by field using the helpers here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from aiohttp import web

from trunkline.carriers.numbering import country_for, is_toll_free, state_for
from trunkline.control_api import serialize, shapes
from trunkline.control_api.access import require_identity
from trunkline.control_api.call_settings import CallSettings, merge_call_settings
from trunkline.control_api.errors import ApiError
from trunkline.control_api.keys import SECRET_BOX, SETTINGS
from trunkline.control_api.number_rules import (
    cap_reached,
    number_options,
)
from trunkline.control_api.route_table import Ctx, Reply, Route
from trunkline.control_api.schema import boolean, obj, string
from trunkline.storage.errors import NumberCapReached, NumberInUse
from trunkline.storage.models import InboundRouting, PhoneNumber, new_id, utcnow

# The carriers ``provider`` may name (docs/api.md); ``sip_trunk`` is any other SIP carrier.
PROVIDERS = ("twilio", "telnyx", "vonage", "bandwidth", "plivo", "signalwire", "sip_trunk")
PROVIDER = string(
    enum=PROVIDERS,
    description="The SIP carrier: one of the named ones, or sip_trunk for any other",
)
AUTH_USERNAME = string(max_length=128, nullable=True, description="SIP digest username")
AUTH_PASSWORD = string(
    max_length=256, nullable=True, description="SIP digest password (write-only, stored encrypted)"
)
REGISTER = boolean(
    description="Keep a SIP registration for this number (the carrier delivers calls to it)"
)
REGISTRAR = {
    **shapes.TRUNK_ADDRESS,
    "type": ["string", "null"],
    "description": "Registrar host[:port] for register (default: trunk_address)",
}
FRIENDLY_NAME = string(max_length=128, nullable=True, description="A label for the number")
VOICEMAIL_MESSAGE = string(
    max_length=1000, nullable=True, description="Spoken when no agent can take the call"
)
FALLBACK = obj(
    {"agent_id": shapes.AGENT_REF},
    required=("agent_id",),
    nullable=True,
    description="Agent tried when the primary agent cannot be reached",
)


def routing_schema() -> dict[str, Any]:
    return obj(
        {
            "agent_id": {**shapes.AGENT_REF, "type": ["string", "null"]},
            "fallback": FALLBACK,
            "voicemail_message": VOICEMAIL_MESSAGE,
        },
        nullable=True,
        description="Inbound routing override; by default calls go to the number's agent",
    )


def provider_config_schema(*, partial: bool) -> dict[str, Any]:
    return obj(
        {
            "trunk_address": shapes.TRUNK_ADDRESS,
            "auth_username": AUTH_USERNAME,
            "auth_password": AUTH_PASSWORD,
            "register": REGISTER,
            "registrar": REGISTRAR,
        },
        required=() if partial else ("trunk_address",),
        description="SIP trunk settings from the carrier's console",
    )


REGISTER_BODY = obj(
    {
        "phone_number": shapes.E164,
        "provider": PROVIDER,
        "agent_id": shapes.AGENT_REF,
        "provider_config": provider_config_schema(partial=False),
        "friendly_name": FRIENDLY_NAME,
        "inbound_routing": routing_schema(),
        "incoming_call_action": shapes.ACTION,
        "client_websocket_url": shapes.WS_URL,
        "incoming_call_webhook_url": shapes.WEBHOOK_URL,
        "agent_protocol": shapes.AGENT_PROTOCOL,
        "agent_audio": shapes.AGENT_AUDIO,
        "recording_enabled": {"type": "boolean"},
    },
    required=("phone_number", "provider", "agent_id", "provider_config"),
)


def encrypt_secret(ctx: Ctx, secret: str) -> str:
    return ctx.request.app[SECRET_BOX].encrypt(secret)


async def merge_routing(
    ctx: Ctx, current: InboundRouting | None, changes: Mapping[str, Any] | None
) -> InboundRouting | None:
    """Apply a (partial) ``inbound_routing`` object; ``None`` clears the override."""
    if changes is None:
        return None
    routing = current if current is not None else InboundRouting()
    if "agent_id" in changes:
        agent = changes["agent_id"]
        agent_id = None
        if agent is not None:
            agent_id = (await require_identity(ctx, agent, "inbound_routing.agent_id")).id
        routing = replace(routing, agent_id=agent_id)
    if "fallback" in changes:
        fallback = changes["fallback"]
        fallback_id = None
        if fallback is not None:
            identity = await require_identity(
                ctx, fallback["agent_id"], "inbound_routing.fallback.agent_id"
            )
            fallback_id = identity.id
        routing = replace(routing, fallback_agent_id=fallback_id)
    if "voicemail_message" in changes:
        routing = replace(routing, voicemail_message=changes["voicemail_message"])
    return routing


def merge_provider_config(
    ctx: Ctx, number: PhoneNumber, changes: Mapping[str, Any]
) -> dict[str, Any]:
    """PhoneNumber field changes for a (partial) ``provider_config`` object."""
    if number.provider is None:
        raise ApiError(
            422,
            "provider_config: only registered numbers (POST /numbers/register) have a SIP trunk",
        )
    fields: dict[str, Any] = {}
    if "trunk_address" in changes:
        fields["trunk_address"] = changes["trunk_address"]
    if "auth_username" in changes:
        fields["auth_username"] = changes["auth_username"]
    if "auth_password" in changes:
        password = changes["auth_password"]
        fields["auth_password_encrypted"] = (
            None if password is None else encrypt_secret(ctx, password)
        )
    if "register" in changes:
        fields["sip_register"] = changes["register"]
    if "registrar" in changes:
        fields["registrar"] = changes["registrar"]
    if fields.get("sip_register") is False or "registrar" in fields:
        # A new binding (or none): the old status no longer says anything.
        fields.update(registration_state=None, registration_expires_at=None)
        fields["registration_error"] = None
    return fields


async def register_number(ctx: Ctx) -> web.Response:
    body = ctx.body
    owner = await require_identity(ctx, body["agent_id"], "agent_id")
    settings = ctx.request.app[SETTINGS]
    call = merge_call_settings(CallSettings("auto_reject", None, None), body, settings)
    routing = None
    if body.get("inbound_routing") is not None:
        routing = await merge_routing(ctx, None, body["inbound_routing"])
    trunk = body["provider_config"]
    password = trunk.get("auth_password")
    e164 = body["phone_number"]
    now = utcnow()
    record = PhoneNumber(
        id=new_id(),
        organization_id=ctx.principal.organization_id,
        number=e164,
        type="toll_free" if is_toll_free(e164) else "local",
        status="active",
        incoming_call_action=call.incoming_call_action,
        client_websocket_url=call.client_websocket_url,
        incoming_call_webhook_url=call.incoming_call_webhook_url,
        agent_identity_id=owner.id,
        state=None if is_toll_free(e164) else state_for(e164),
        country=country_for(e164),
        created_at=now,
        updated_at=now,
        provider=body["provider"],
        friendly_name=body.get("friendly_name"),
        trunk_address=trunk["trunk_address"],
        auth_username=trunk.get("auth_username"),
        auth_password_encrypted=None if password is None else encrypt_secret(ctx, password),
        inbound_routing=routing,
        sip_register=bool(trunk.get("register", False)),
        registrar=trunk.get("registrar"),
        **number_options(body),
    )
    cap = settings.api.max_numbers_per_org
    try:
        stored = await ctx.numbers.create_number(record, max_active=cap)
    except NumberCapReached:
        raise cap_reached(cap) from None
    except NumberInUse:
        raise ApiError(409, "phone_number is already registered") from None
    return web.json_response(serialize.phone_number(stored), status=201)


ROUTES = [
    Route(
        "POST",
        "/numbers/register",
        register_number,
        operation_id="register_phone_number",
        summary="Register your own number with its SIP trunk",
        tag="Phone Numbers",
        body=REGISTER_BODY,
        responses={
            201: Reply("The registered number", shapes.component("PhoneNumber")),
            403: Reply("Identity-scoped token naming another identity"),
            404: Reply("Agent identity not found"),
            409: Reply("The number is already active"),
            429: Reply("The organisation holds the maximum number of active numbers"),
        },
    ),
]
