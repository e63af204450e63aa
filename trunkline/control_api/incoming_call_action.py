"""Per-identity inbound-call configuration (seed 002): ``PUT``/``GET /incoming-call-action``.

Admin tokens must name ``agent_identity_id`` (422 when omitted): the identity's
id or its handle (leading ``@`` optional), as ``POST /numbers/register`` takes
``agent_id``; it is answered with the id. Identity-scoped tokens use their own
identity and get 403 for naming another.
``PUT`` replaces the whole configuration, so a URL left out is cleared.
"""

from __future__ import annotations

from aiohttp import web

from trunkline.control_api import serialize, shapes
from trunkline.control_api.access import find_identity
from trunkline.control_api.call_settings import CallSettings, merge_call_settings
from trunkline.control_api.errors import ApiError
from trunkline.control_api.keys import SETTINGS
from trunkline.control_api.route_table import Ctx, Param, Reply, Route
from trunkline.control_api.schema import obj
from trunkline.storage.models import AgentIdentity, IncomingCallConfig, utcnow

IDENTITY_REQUIRED = "agent_identity_id is required"
OTHER_IDENTITY = "Identity-scoped tokens cannot name another agent identity"
IDENTITY_NOT_FOUND = "Agent identity not found"
NO_CONFIG = "No inbound-call config set for this identity"

PUT_BODY = obj(
    {
        "incoming_call_action": shapes.ACTION,
        "agent_identity_id": {**shapes.AGENT_REF, "type": ["string", "null"]},
        "client_websocket_url": shapes.WS_URL,
        "incoming_call_webhook_url": shapes.WEBHOOK_URL,
    },
    required=("incoming_call_action",),
)


async def _target_identity(ctx: Ctx, named: str | None) -> AgentIdentity:
    principal = ctx.principal
    if named is None:
        if principal.is_admin:
            raise ApiError(422, IDENTITY_REQUIRED)
        own = principal.agent_identity_id
        assert own is not None
        identity = await ctx.identities.get_identity(own)
    else:
        identity = await find_identity(ctx, named)
        if not principal.is_admin and (
            identity is None or identity.id != principal.agent_identity_id
        ):
            raise ApiError(403, OTHER_IDENTITY)
    if identity is None or identity.organization_id != principal.organization_id:
        raise ApiError(404, IDENTITY_NOT_FOUND)
    return identity


async def put_incoming_call_action(ctx: Ctx) -> web.Response:
    body = ctx.body
    identity = await _target_identity(ctx, body.get("agent_identity_id"))
    merged = merge_call_settings(
        CallSettings(body["incoming_call_action"], None, None), body, ctx.request.app[SETTINGS]
    )
    now = utcnow()
    stored = await ctx.numbers.upsert_incoming_call_config(
        IncomingCallConfig(
            agent_identity_id=identity.id,
            incoming_call_action=merged.incoming_call_action,
            client_websocket_url=merged.client_websocket_url,
            incoming_call_webhook_url=merged.incoming_call_webhook_url,
            created_at=now,
            updated_at=now,
        )
    )
    return web.json_response(serialize.incoming_call_config(stored))


async def get_incoming_call_action(ctx: Ctx) -> web.Response:
    identity = await _target_identity(ctx, ctx.query["agent_identity_id"])
    config = await ctx.numbers.get_incoming_call_config(identity.id)
    if config is None:
        raise ApiError(404, NO_CONFIG)
    return web.json_response(serialize.incoming_call_config(config))


_ERRORS = {
    403: Reply("Identity-scoped token naming another identity"),
    404: Reply("Agent identity not found, or no configuration set"),
}

ROUTES = [
    Route(
        "PUT",
        "/incoming-call-action",
        put_incoming_call_action,
        operation_id="set_incoming_call_action",
        summary="Set an agent identity's inbound-call configuration",
        tag="Incoming calls",
        body=PUT_BODY,
        responses={
            200: Reply("The stored configuration", shapes.component("IncomingCallAction")),
            **_ERRORS,
        },
    ),
    Route(
        "GET",
        "/incoming-call-action",
        get_incoming_call_action,
        operation_id="get_incoming_call_action",
        summary="Read an agent identity's inbound-call configuration",
        tag="Incoming calls",
        params=(
            Param(
                "agent_identity_id",
                "query",
                shapes.AGENT_REF,
                "The identity to read, by id or handle (required with an admin token)",
            ),
        ),
        responses={
            200: Reply("The configuration", shapes.component("IncomingCallAction")),
            **_ERRORS,
        },
    ),
]
