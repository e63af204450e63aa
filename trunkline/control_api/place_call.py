"""Placing an outbound call: ``POST /place-call``.

The caller's number must be active and the token's to use; the agent
WebSocket is the one given, else the number's, else its identity's incoming
call configuration's. The organisation's calling limits are checked
(``usage.outbound_usage``) before the call record is created, owned by this
process from the start, and its concurrent calls (on every node) as it is; call control dials it. A dial that fails marks the
record failed through ``CallLifecycle`` and answers 429 (capacity), 502
(carrier, or no trunk for the number) or 503 (draining, or no SIP gateway here).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from aiohttp import web

from trunkline import metrics
from trunkline.calls.control import CallCapacityError, DialError
from trunkline.calls.lifecycle import CallLifecycle
from trunkline.control_api import serialize, shapes
from trunkline.control_api.errors import ApiError
from trunkline.control_api.keys import (
    BLOB_STORE,
    CALL_CONTROL,
    CALL_LIMITS,
    DRAINING,
    REPOSITORY,
    SETTINGS,
)
from trunkline.control_api.presigned_media import presigner
from trunkline.control_api.route_table import Ctx, Reply, Route
from trunkline.control_api.schema import obj, string
from trunkline.control_api.urls import check_url
from trunkline.control_api.usage import outbound_usage
from trunkline.storage.errors import CallLimitReached
from trunkline.storage.models import Call, PhoneNumber, utcnow

log = logging.getLogger("trunkline.api.calls")

CALL_CAPACITY = "Too many concurrent calls for this organisation"
NO_TRUNK = "outbound calling is not available: no SIP trunk configured"
NOT_YOURS = "from_number does not belong to your organization"
NOT_ACTIVE = "from_number is not active"

PLACE_BODY = obj(
    {
        "from_number": {**shapes.E164, "description": "Your active number to call from"},
        "to_number": {**shapes.E164, "description": "The number to call"},
        "client_websocket_url": shapes.WS_URL,
        "webhook_url": shapes.WEBHOOK_URL,
        "origination": string(enum=("dedicated_number",), description="Only dedicated_number"),
        "mode": string(enum=("client_websocket",), description="Only client_websocket"),
        "agent_identity_id": string(fmt="uuid", max_length=36, nullable=True),
    },
    required=("from_number", "to_number"),
)


async def _caller_number(ctx: Ctx, e164: str) -> PhoneNumber:
    number = await ctx.numbers.find_active_number(e164)
    if number is None:
        mine = await ctx.numbers.list_numbers(ctx.principal.organization_id)
        if any(n.number == e164 for n in mine):
            raise ApiError(400, NOT_ACTIVE)
        raise ApiError(403, NOT_YOURS)
    if number.organization_id != ctx.principal.organization_id:
        raise ApiError(403, NOT_YOURS)
    if not ctx.principal.may_see_identity(number.agent_identity_id):
        raise ApiError(403, "from_number does not belong to this agent identity")
    if number.status != "active":
        raise ApiError(400, NOT_ACTIVE)
    return number


async def place_call(ctx: Ctx) -> web.Response:
    body = ctx.body
    settings = ctx.request.app[SETTINGS]
    if ctx.request.app[DRAINING].active:
        raise ApiError(503, "Draining: not accepting new calls", headers={"Retry-After": "30"})
    if body["to_number"] == body["from_number"]:
        raise ApiError(422, "to_number: must differ from from_number")
    if body.get("webhook_url") is not None:
        check_url(body["webhook_url"], "webhook", settings, "webhook_url")
    number = await _caller_number(ctx, body["from_number"])
    named = body.get("agent_identity_id")
    if named is not None and named.lower() != number.agent_identity_id:
        raise ApiError(403, "from_number does not belong to this agent identity")
    websocket = body.get("client_websocket_url")
    if websocket is not None:
        check_url(websocket, "websocket", settings, "client_websocket_url")
    else:
        websocket = await _default_websocket(ctx, number)
    now = utcnow()
    usage = await outbound_usage(
        ctx.calls,
        ctx.principal.organization_id,
        ctx.request.app[CALL_LIMITS],
        now,
    )
    if usage.exhausted:
        limits = usage.limits
        raise ApiError(
            429,
            f"Call limit reached: {limits.calls_per_window} calls or "
            f"{limits.minutes_per_window} minutes per {limits.window_seconds // 3600} hours",
            headers={"Retry-After": str(usage.retry_after_seconds(now))},
        )
    control = ctx.request.app[CALL_CONTROL].current
    try:
        record = await ctx.calls.create_call(
            Call.initiated(
                number,
                remote_phone_number=body["to_number"],
                direction="outbound",
                client_websocket_url=websocket,
                now=now,
                # Owned from the start: a crash before the INVITE leaves it to the restart sweep.
                owner=control.owner if control is not None else None,
            ),
            max_live_per_org=settings.calls.max_calls_per_org,
        )
    except CallLimitReached:  # counted over every process sharing the database
        metrics.CALLS_AT_LIMIT.inc()
        raise ApiError(429, CALL_CAPACITY, headers={"Retry-After": "30"}) from None
    # CallLifecycle is typed against the whole repository, so it is handed the app's.
    lifecycle = CallLifecycle(
        record, ctx.request.app[REPOSITORY], agent_identity_id=number.agent_identity_id
    )
    if control is None:
        await lifecycle.transition("failed", detail=NO_TRUNK)
        raise ApiError(503, NO_TRUNK)
    try:
        await control.place_call(record, number)
    except CallCapacityError as exc:
        await lifecycle.transition("failed", detail=str(exc))
        raise ApiError(429, str(exc), headers={"Retry-After": "30"}) from None
    except DialError as exc:
        await lifecycle.transition("failed", detail=f"dial failed: {exc}")
        raise ApiError(502, f"Carrier dial failed: {exc}") from None
    except Exception:
        await lifecycle.transition("failed", detail="dial failed: internal error")
        raise
    current = await ctx.calls.get_call(record.id) or record
    payload: dict[str, Any] = serialize.call(current, presigner(ctx.request.app[BLOB_STORE]))
    payload["rate_limit"] = replace(usage, calls_used=usage.calls_used + 1).as_json()
    log.info("placed call", extra={"call_id": record.id, "phone_number_id": number.id})
    return web.json_response(payload, status=201)


async def _default_websocket(ctx: Ctx, number: PhoneNumber) -> str:
    if number.client_websocket_url:
        return number.client_websocket_url
    if number.agent_identity_id is not None:
        config = await ctx.numbers.get_incoming_call_config(number.agent_identity_id)
        if config is not None and config.client_websocket_url:
            return config.client_websocket_url
    raise ApiError(
        422,
        "client_websocket_url is required: neither the number nor its agent identity has one",
    )


ROUTES = [
    Route(
        "POST",
        "/place-call",
        place_call,
        operation_id="place_call",
        summary="Place an outbound call bridged to an agent WebSocket",
        tag="Calls",
        body=PLACE_BODY,
        responses={
            201: Reply(
                "The call, with the organisation's usage", shapes.component("CallWithRateLimit")
            ),
            400: Reply("from_number is not active"),
            403: Reply("from_number does not belong to your organization"),
            429: Reply("Calling limit reached", headers={"Retry-After": "Seconds to wait"}),
            502: Reply("The carrier could not dial, or the number has no SIP trunk"),
            503: Reply("Draining for a restart, or no SIP gateway runs in this process"),
        },
    ),
]
