"""Organisation admins list, create and revoke API tokens: ``/api/v1/api-keys``.

Only admin tokens (no identity) may use these endpoints; an identity token
gets 403. A key is shown once, in the ``api_key`` field of the creation
response; afterwards only its display prefix is ever returned. Revoking is
``DELETE``: the key stays listed with ``revoked_at`` set and is refused (401)
from the next request on, in every worker process, because tokens are read
from the database on each request.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from trunkline.control_api.errors import ApiError
from trunkline.control_api.route_table import Ctx, Param, Reply, Route, uuid_param
from trunkline.control_api.schema import array, integer, obj, string
from trunkline.control_api.serialize import iso, iso_or_none
from trunkline.metrics import API_KEY_CREATIONS_REFUSED
from trunkline.storage.errors import TokenCapReached
from trunkline.storage.models import ApiToken, utcnow
from trunkline.tokens import issue_token, token_status

PREFIX = "/api/v1"
ADMIN_ONLY = "Only organisation admin tokens can manage API keys"
NOT_FOUND = "API key not found"
IDENTITY_NOT_FOUND = "Agent identity not found"
MAX_USABLE_KEYS_PER_ORG = 1000
CAP_RETRY_AFTER_SECONDS = 60
MAX_LIFETIME = timedelta(days=3650)
MAX_LIFETIME_SECONDS = int(MAX_LIFETIME.total_seconds())

API_KEY = obj(
    {
        "id": string(fmt="uuid"),
        "organization_id": string(fmt="uuid"),
        "agent_identity_id": string(fmt="uuid", nullable=True),
        "prefix": string(nullable=True),
        "status": string(enum=("active", "expired", "revoked")),
        "created_at": string(fmt="date-time"),
        "expires_at": string(fmt="date-time", nullable=True),
        "revoked_at": string(fmt="date-time", nullable=True),
    },
    required=(
        "id",
        "organization_id",
        "agent_identity_id",
        "prefix",
        "status",
        "created_at",
        "expires_at",
        "revoked_at",
    ),
)
CREATED_API_KEY = obj(
    {**API_KEY["properties"], "api_key": string()},
    required=(*API_KEY["required"], "api_key"),
)
CREATE_BODY = obj(
    {
        "agent_identity_id": string(
            fmt="uuid",
            max_length=36,
            nullable=True,
            description="Scope the key to one agent identity (omit or null: admin key)",
        ),
        "expires_at": string(
            max_length=64,
            nullable=True,
            description="ISO 8601 time with a UTC offset, at most 3650 days away",
        ),
        "expires_in_seconds": integer(
            minimum=1, maximum=MAX_LIFETIME_SECONDS, description="Lifetime from now"
        ),
    },
)


def api_key(token: ApiToken, now: datetime) -> dict[str, Any]:
    return {
        "id": token.id,
        "organization_id": token.organization_id,
        "agent_identity_id": token.agent_identity_id,
        "prefix": token.prefix,
        "status": token_status(token, now),
        "created_at": iso(token.created_at),
        "expires_at": iso_or_none(token.expires_at),
        "revoked_at": iso_or_none(token.revoked_at),
    }


def _require_admin(ctx: Ctx) -> None:
    if not ctx.principal.is_admin:
        raise ApiError(403, ADMIN_ONLY)


def _expiry(body: dict[str, Any], now: datetime) -> datetime | None:
    raw_at = body.get("expires_at")
    seconds = body.get("expires_in_seconds")
    if raw_at is not None and seconds is not None:
        raise ApiError(422, "expires_at and expires_in_seconds are mutually exclusive")
    if seconds is not None:
        return now + timedelta(seconds=seconds)
    if raw_at is None:
        return None
    try:
        moment = datetime.fromisoformat(raw_at)
    except ValueError:
        raise ApiError(422, "expires_at: must be an ISO 8601 time with a UTC offset") from None
    if moment.tzinfo is None:
        raise ApiError(422, "expires_at: must be an ISO 8601 time with a UTC offset")
    if not now < moment <= now + MAX_LIFETIME:
        raise ApiError(422, "expires_at: must be in the future and at most 3650 days away")
    return moment


async def _own_key(ctx: Ctx) -> ApiToken:
    token = await ctx.identities.get_token(ctx.path["api_key_id"])
    if token is None or token.organization_id != ctx.principal.organization_id:
        raise ApiError(404, NOT_FOUND)
    return token


async def list_api_keys(ctx: Ctx) -> web.Response:
    _require_admin(ctx)
    tokens = await ctx.identities.list_tokens(
        ctx.principal.organization_id, limit=ctx.query["limit"], offset=ctx.query["offset"]
    )
    now = utcnow()
    return web.json_response([api_key(t, now) for t in tokens])


async def create_api_key(ctx: Ctx) -> web.Response:
    _require_admin(ctx)
    now = utcnow()
    expires_at = _expiry(ctx.body, now)
    identity_id = ctx.body.get("agent_identity_id")
    if identity_id is not None:
        identity = await ctx.identities.get_identity(identity_id.lower())
        if identity is None or identity.organization_id != ctx.principal.organization_id:
            raise ApiError(404, IDENTITY_NOT_FOUND)
        identity_id = identity.id
    try:
        issued = await issue_token(
            ctx.identities,
            ctx.principal.organization_id,
            identity_id,
            expires_at=expires_at,
            max_usable=MAX_USABLE_KEYS_PER_ORG,
        )
    except TokenCapReached:
        API_KEY_CREATIONS_REFUSED.inc()
        raise ApiError(
            429,
            f"Organization already has {MAX_USABLE_KEYS_PER_ORG} usable API keys. "
            "Revoke one before creating another",
            headers={"Retry-After": str(CAP_RETRY_AFTER_SECONDS)},
        ) from None
    body = {**api_key(issued.record, now), "api_key": issued.secret}
    return web.json_response(body, status=201)


async def get_api_key(ctx: Ctx) -> web.Response:
    _require_admin(ctx)
    return web.json_response(api_key(await _own_key(ctx), utcnow()))


async def revoke_api_key(ctx: Ctx) -> web.Response:
    _require_admin(ctx)
    token = await _own_key(ctx)
    now = utcnow()
    revoked = await ctx.identities.revoke_token(token.id, now)
    if revoked is None:
        raise ApiError(404, NOT_FOUND)
    return web.json_response(api_key(revoked, now))


_KEY_ID = uuid_param("api_key_id", NOT_FOUND, "API key id")
_TAG = "API keys"
_FORBIDDEN = {403: Reply(ADMIN_ONLY)}

ROUTES = [
    Route(
        "GET",
        "/api-keys",
        list_api_keys,
        operation_id="list_api_keys",
        summary="List the organisation's API keys (display prefix only, never the key)",
        tag=_TAG,
        prefix=PREFIX,
        params=(
            Param("limit", "query", integer(minimum=1, maximum=200), "Page size", default=50),
            Param("offset", "query", integer(minimum=0), "Keys to skip", default=0),
        ),
        responses={200: Reply("API keys, oldest first", array(API_KEY)), **_FORBIDDEN},
    ),
    Route(
        "POST",
        "/api-keys",
        create_api_key,
        operation_id="create_api_key",
        summary="Create an API key; the key itself is returned once",
        tag=_TAG,
        prefix=PREFIX,
        body=CREATE_BODY,
        responses={
            201: Reply("The key, with api_key set this once", CREATED_API_KEY),
            **_FORBIDDEN,
            404: Reply(IDENTITY_NOT_FOUND),
            429: Reply("The organisation holds the maximum number of usable keys"),
        },
    ),
    Route(
        "GET",
        "/api-keys/{api_key_id}",
        get_api_key,
        operation_id="get_api_key",
        summary="Read one API key",
        tag=_TAG,
        prefix=PREFIX,
        params=(_KEY_ID,),
        responses={200: Reply("The key", API_KEY), **_FORBIDDEN, 404: Reply(NOT_FOUND)},
    ),
    Route(
        "DELETE",
        "/api-keys/{api_key_id}",
        revoke_api_key,
        operation_id="revoke_api_key",
        summary="Revoke an API key; it is refused from the next request on",
        tag=_TAG,
        prefix=PREFIX,
        params=(_KEY_ID,),
        responses={200: Reply("The revoked key", API_KEY), **_FORBIDDEN, 404: Reply(NOT_FOUND)},
    ),
]
