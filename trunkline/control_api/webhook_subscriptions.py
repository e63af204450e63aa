"""Event webhook subscriptions, in the Inkbox shape.

``/api/v1/webhooks/subscriptions`` (POST, GET, GET one, PATCH, DELETE); the
delivery log is ``webhook_deliveries.py``. A subscription belongs to exactly one
agent identity (every event about it) or one phone number (events about that
number). Identity tokens manage only their own identity's subscriptions. A
delivery ``auth_token`` is write-only: answers say ``auth_token_set`` (and the
SDK's ``has_auth_token``), never the token. The
first subscription of an identity without a signing key mints one and returns
it once as ``signing_key``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from trunkline.control_api.access import load_number
from trunkline.control_api.errors import ApiError
from trunkline.control_api.keys import SECRET_BOX, SETTINGS
from trunkline.control_api.route_table import Ctx, Param, Reply, Route
from trunkline.control_api.schema import Schema, array, boolean, obj, string
from trunkline.control_api.serialize import iso
from trunkline.control_api.urls import check_url
from trunkline.storage.models import WebhookSubscription, new_id, utcnow
from trunkline.webhooks import new_signing_key

PREFIX = "/api/v1/webhooks"
EVENT_TYPES = (
    "call.started",
    "call.ended",
    "text.received",
    "transcript.segment",
    "recording.ready",
)
INCOMING_CALL = "phone.incoming_call"
NOT_FOUND = "Webhook subscription not found"
MAX_SUBSCRIPTIONS_PER_ORG = 100

_EVENT_TYPE = string(min_length=1, max_length=100)
_EVENT_TYPES = {**array(_EVENT_TYPE), "minItems": 1, "maxItems": len(EVENT_TYPES)}
_URL = string(min_length=1, max_length=2048, description="HTTPS endpoint for deliveries")
_AUTH_TOKEN = string(min_length=1, max_length=512, nullable=True)
_CONTEXT = {"type": ["object", "null"], "description": "Not supported: must be null"}
CREATE_BODY = obj(
    {
        "url": _URL,
        "event_types": _EVENT_TYPES,
        "agent_identity_id": string(fmt="uuid", max_length=36),
        "phone_number_id": string(fmt="uuid", max_length=36),
        "mailbox_id": string(max_length=36),
        "context_config": _CONTEXT,
        "auth_token": _AUTH_TOKEN,
    },
    required=("url", "event_types"),
)
UPDATE_BODY = obj(
    {
        "url": _URL,
        "event_types": _EVENT_TYPES,
        "context_config": _CONTEXT,
        "auth_token": _AUTH_TOKEN,
    }
)
_NULLABLE_ID = string(fmt="uuid", nullable=True)
SUBSCRIPTION: Schema = {
    "type": "object",
    "properties": {
        "id": string(fmt="uuid"),
        "organization_id": string(),
        "mailbox_id": _NULLABLE_ID,
        "phone_number_id": _NULLABLE_ID,
        "agent_identity_id": _NULLABLE_ID,
        "owner_identity_id": _NULLABLE_ID,
        "url": string(),
        "event_types": array(string()),
        "status": string(enum=("active", "disabled")),
        "created_at": string(fmt="date-time"),
        "updated_at": string(fmt="date-time"),
        "context_config": {"type": "null"},
        "auth_token_set": boolean(
            description="Whether deliveries carry a bearer token; the token is never returned"
        ),
        "has_auth_token": boolean(description="Same as auth_token_set (the Inkbox SDK's name)"),
        "signing_key": string(nullable=True),
    },
}


def _check_event_types(values: list[str]) -> list[str]:
    if not values:
        raise ApiError(422, "event_types: must list at least one event type")
    if len(set(values)) != len(values):
        raise ApiError(422, "event_types: must not repeat a value")
    for value in values:
        if value == INCOMING_CALL:
            raise ApiError(
                422,
                "event_types: phone.incoming_call is configured with the incoming-call action,"
                " not a subscription",
            )
        if value not in EVENT_TYPES:
            raise ApiError(422, f"event_types: unknown event type {value!r}")
    return values


def _check_context(body: dict[str, Any]) -> None:
    if body.get("context_config") is not None:
        raise ApiError(422, "context_config: not supported by this server; send null or omit it")


async def _owner_identity_id(ctx: Ctx, subscription: WebhookSubscription) -> str | None:
    if subscription.agent_identity_id is not None:
        return subscription.agent_identity_id
    if subscription.phone_number_id is None:
        return None
    number = await ctx.numbers.get_number(subscription.phone_number_id)
    return None if number is None else number.agent_identity_id


async def _serialize(ctx: Ctx, subscription: WebhookSubscription) -> dict[str, Any]:
    """The subscription as answered; its delivery ``auth_token`` is never echoed, only whether one is set."""
    token_set = subscription.auth_token_encrypted is not None
    return {
        "id": subscription.id,
        "organization_id": subscription.organization_id,
        "mailbox_id": None,
        "phone_number_id": subscription.phone_number_id,
        "agent_identity_id": subscription.agent_identity_id,
        "owner_identity_id": await _owner_identity_id(ctx, subscription),
        "url": subscription.url,
        "event_types": subscription.event_types,
        "status": subscription.status,
        "created_at": iso(subscription.created_at),
        "updated_at": iso(subscription.updated_at),
        "context_config": None,
        "auth_token_set": token_set,
        "has_auth_token": token_set,  # the Inkbox SDK's name for the same flag
    }


async def visible_subscription(ctx: Ctx, subscription_id: str) -> WebhookSubscription:
    subscription = await ctx.webhooks.get_subscription(subscription_id)
    if subscription is None or subscription.organization_id != ctx.principal.organization_id:
        raise ApiError(404, NOT_FOUND)
    if not ctx.principal.is_admin:
        owner = await _owner_identity_id(ctx, subscription)
        if owner != ctx.principal.agent_identity_id:
            raise ApiError(404, NOT_FOUND)
    return subscription


async def _resolve_owner(ctx: Ctx, body: dict[str, Any]) -> tuple[str | None, str | None, str]:
    """(agent_identity_id, phone_number_id, owner identity) from exactly one selector."""
    named = [k for k in ("agent_identity_id", "phone_number_id", "mailbox_id") if body.get(k)]
    if len(named) != 1:
        raise ApiError(422, "Exactly one of agent_identity_id or phone_number_id is required")
    if named[0] == "mailbox_id":
        raise ApiError(422, "mailbox_id: mail is not served by this server")
    principal = ctx.principal
    if named[0] == "phone_number_id":
        number = await load_number(ctx, body["phone_number_id"], allow_released=False)
        if number.agent_identity_id is None:
            raise ApiError(422, "phone_number_id: the number has no agent identity to own it")
        return None, number.id, number.agent_identity_id
    named_id = body["agent_identity_id"].lower()
    if not principal.may_see_identity(named_id):
        raise ApiError(403, "Identity-scoped tokens cannot name another agent identity")
    identity = await ctx.identities.get_identity(named_id)
    if identity is None or identity.organization_id != principal.organization_id:
        raise ApiError(404, "Agent identity not found")
    return identity.id, None, identity.id


async def create_subscription(ctx: Ctx) -> web.Response:
    body = ctx.body
    _check_context(body)
    url = check_url(body["url"], "webhook", ctx.request.app[SETTINGS], "url")
    event_types = _check_event_types(body["event_types"])
    identity_id, number_id, owner = await _resolve_owner(ctx, body)
    existing = await ctx.webhooks.list_subscriptions(ctx.principal.organization_id)
    if len(existing) >= MAX_SUBSCRIPTIONS_PER_ORG:
        raise ApiError(429, f"At most {MAX_SUBSCRIPTIONS_PER_ORG} subscriptions per organization")
    token = body.get("auth_token")
    now = utcnow()
    subscription = await ctx.webhooks.create_subscription(
        WebhookSubscription(
            id=new_id(),
            organization_id=ctx.principal.organization_id,
            agent_identity_id=identity_id,
            phone_number_id=number_id,
            url=url,
            event_types=event_types,
            status="active",
            created_at=now,
            updated_at=now,
            auth_token_encrypted=ctx.request.app[SECRET_BOX].encrypt(token) if token else None,
        )
    )
    signing_key = None
    if await ctx.identities.get_identity_signing_key(owner) is None:
        signing_key = new_signing_key()
        await ctx.identities.set_identity_signing_key(
            owner, ctx.request.app[SECRET_BOX].encrypt(signing_key)
        )
    document = await _serialize(ctx, subscription)
    document["signing_key"] = signing_key
    return web.json_response(document, status=201)


async def list_subscriptions(ctx: Ctx) -> web.Response:
    query = ctx.query
    if query["agent_identity_id"] and query["phone_number_id"]:
        raise ApiError(422, "agent_identity_id and phone_number_id are mutually exclusive")
    found = await ctx.webhooks.list_subscriptions(
        ctx.principal.organization_id,
        agent_identity_id=query["agent_identity_id"],
        phone_number_id=query["phone_number_id"],
        url=query["url"],
        event_type=query["event_type"],
    )
    visible = []
    for subscription in found:
        if ctx.principal.is_admin or (
            await _owner_identity_id(ctx, subscription) == ctx.principal.agent_identity_id
        ):
            visible.append(await _serialize(ctx, subscription))
    return web.json_response({"subscriptions": visible})


async def get_subscription(ctx: Ctx) -> web.Response:
    subscription = await visible_subscription(ctx, ctx.path["subscription_id"])
    return web.json_response(await _serialize(ctx, subscription))


async def update_subscription(ctx: Ctx) -> web.Response:
    subscription = await visible_subscription(ctx, ctx.path["subscription_id"])
    body = ctx.body
    _check_context(body)
    changes: dict[str, Any] = {}
    if "url" in body:
        changes["url"] = check_url(body["url"], "webhook", ctx.request.app[SETTINGS], "url")
    if "event_types" in body:
        changes["event_types"] = _check_event_types(body["event_types"])
    if "auth_token" in body:
        token = body["auth_token"]
        changes["auth_token_encrypted"] = (
            ctx.request.app[SECRET_BOX].encrypt(token) if token else None
        )
    if changes.keys() & {"url"} and subscription.status == "disabled":
        changes.update(status="active", disabled_reason=None)  # a fixed URL re-enables it
    updated = await ctx.webhooks.update_subscription(subscription.id, changes)
    if updated is None:
        raise ApiError(404, NOT_FOUND)
    return web.json_response(await _serialize(ctx, updated))


async def delete_subscription(ctx: Ctx) -> web.Response:
    subscription = await visible_subscription(ctx, ctx.path["subscription_id"])
    await ctx.webhooks.delete_subscription(subscription.id)
    return web.Response(status=204)


_SUBSCRIPTION_ID = Param(
    "subscription_id",
    "path",
    {"type": "string", "format": "uuid"},
    "Subscription id",
    True,
    None,
    NOT_FOUND,
)
_ERRORS = {404: Reply(NOT_FOUND)}
TAG = "Webhooks"


def query_param(name: str, schema: Schema, description: str, default: Any = None) -> Param:
    return Param(name, "query", schema, description, default=default)


ROUTES = [
    Route(
        "POST",
        "/subscriptions",
        create_subscription,
        operation_id="create_webhook_subscription",
        summary="Subscribe a URL to an identity's or a number's events",
        tag=TAG,
        body=CREATE_BODY,
        prefix=PREFIX,
        responses={
            201: Reply("The subscription (signing_key set once)", SUBSCRIPTION),
            403: Reply("Identity-scoped token naming another identity"),
            404: Reply("Identity or number not found"),
            429: Reply("Too many subscriptions"),
        },
    ),
    Route(
        "GET",
        "/subscriptions",
        list_subscriptions,
        operation_id="list_webhook_subscriptions",
        summary="List webhook subscriptions",
        tag=TAG,
        prefix=PREFIX,
        params=(
            query_param("agent_identity_id", string(fmt="uuid", max_length=36), "Owner identity"),
            query_param("phone_number_id", string(fmt="uuid", max_length=36), "Owner number"),
            query_param("url", string(max_length=2048), "Exact URL"),
            query_param("event_type", string(max_length=100), "Subscribed event type"),
        ),
        responses={200: Reply("Subscriptions", obj({"subscriptions": array(SUBSCRIPTION)}))},
    ),
    Route(
        "GET",
        "/subscriptions/{subscription_id}",
        get_subscription,
        operation_id="get_webhook_subscription",
        summary="Read one webhook subscription",
        tag=TAG,
        prefix=PREFIX,
        params=(_SUBSCRIPTION_ID,),
        responses={200: Reply("The subscription", SUBSCRIPTION), **_ERRORS},
    ),
    Route(
        "PATCH",
        "/subscriptions/{subscription_id}",
        update_subscription,
        operation_id="update_webhook_subscription",
        summary="Change a subscription's URL, event types or bearer token",
        tag=TAG,
        prefix=PREFIX,
        params=(_SUBSCRIPTION_ID,),
        body=UPDATE_BODY,
        responses={200: Reply("The subscription", SUBSCRIPTION), **_ERRORS},
    ),
    Route(
        "DELETE",
        "/subscriptions/{subscription_id}",
        delete_subscription,
        operation_id="delete_webhook_subscription",
        summary="Delete a subscription; its pending deliveries are dropped",
        tag=TAG,
        prefix=PREFIX,
        params=(_SUBSCRIPTION_ID,),
        responses={204: Reply("Deleted"), **_ERRORS},
    ),
]
