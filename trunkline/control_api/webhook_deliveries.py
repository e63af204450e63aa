"""The webhook delivery log, in the Inkbox shape: ``GET /api/v1/webhooks/deliveries``.

Every attempt the outbox made, newest first; an identity-scoped token sees only
the attempts of a subscription it can see.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from trunkline.control_api.errors import ApiError
from trunkline.control_api.route_table import Ctx, Reply, Route
from trunkline.control_api.schema import Schema, array, boolean, integer, obj, string
from trunkline.control_api.serialize import iso
from trunkline.control_api.webhook_subscriptions import (
    NOT_FOUND,
    PREFIX,
    TAG,
    query_param,
    visible_subscription,
)
from trunkline.storage.models import WebhookAttempt

_NULLABLE_ID = string(fmt="uuid", nullable=True)
DELIVERY: Schema = {
    "type": "object",
    "properties": {
        "id": string(fmt="uuid"),
        "organization_id": string(),
        "webhook_subscription_id": _NULLABLE_ID,
        "phone_number_id": _NULLABLE_ID,
        "event_id": string(),
        "event_type": string(),
        "url": string(),
        "request_payload": string(),
        "response_status": {"type": ["integer", "null"]},
        "response_body": string(nullable=True),
        "error_detail": string(nullable=True),
        "duration_ms": {"type": ["integer", "null"]},
        "is_replay": boolean(),
        "replayable": boolean(),
        "created_at": string(fmt="date-time"),
    },
}


def _delivery(attempt: WebhookAttempt) -> dict[str, Any]:
    return {
        "id": attempt.id,
        "organization_id": attempt.organization_id,
        "webhook_subscription_id": attempt.subscription_id,
        "phone_number_id": attempt.phone_number_id,
        "event_id": attempt.event_id,
        "event_type": attempt.event_type,
        "url": attempt.url,
        "request_payload": attempt.request_payload,
        "response_status": attempt.response_status,
        "response_body": attempt.response_body,
        "error_detail": attempt.error_detail,
        "duration_ms": attempt.duration_ms,
        "is_replay": attempt.is_replay,
        "replayable": False,
        "created_at": iso(attempt.created_at),
    }


async def list_deliveries(ctx: Ctx) -> web.Response:
    query = ctx.query
    subscription_id = query["subscription_id"]
    if subscription_id is not None:
        await visible_subscription(ctx, subscription_id)
    elif not ctx.principal.is_admin:
        raise ApiError(422, "subscription_id is required with an identity-scoped token")
    attempts = await ctx.webhooks.list_attempts(
        ctx.principal.organization_id,
        subscription_id=subscription_id,
        phone_number_id=query["phone_number_id"],
        event_type=query["event_type"],
        success=query["success"],
        limit=query["limit"],
        offset=query["offset"],
    )
    return web.json_response({"deliveries": [_delivery(a) for a in attempts]})


ROUTES = [
    Route(
        "GET",
        "/deliveries",
        list_deliveries,
        operation_id="list_webhook_deliveries",
        summary="The log of webhook delivery attempts, newest first",
        tag=TAG,
        prefix=PREFIX,
        params=(
            query_param("subscription_id", string(fmt="uuid", max_length=36), "One subscription"),
            query_param("phone_number_id", string(fmt="uuid", max_length=36), "One number"),
            query_param("event_type", string(max_length=100), "One event type"),
            query_param("success", boolean(), "2xx responses (true) or the rest (false)"),
            query_param("limit", integer(minimum=1, maximum=200), "Page size", 50),
            query_param("offset", integer(minimum=0), "Rows to skip", 0),
        ),
        responses={
            200: Reply("Attempts", obj({"deliveries": array(DELIVERY)})),
            404: Reply(NOT_FOUND),
        },
    ),
]
