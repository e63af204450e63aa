"""Phone numbers (seed 001): provision, list, get, update, release.

Provisioning checks the organisation's cap before asking the inventory (so a
carrier number is never ordered for a request that must fail), then inserts
atomically against the cap; if a concurrent request took the last slot in the
meantime, the number just acquired goes back to the inventory.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from trunkline.carriers.inventory import CarrierError, NoInventory, NumberInventory
from trunkline.carriers.numbering import US_STATES
from trunkline.control_api import serialize, shapes
from trunkline.control_api.access import load_number
from trunkline.control_api.byo import (
    FRIENDLY_NAME,
    merge_provider_config,
    merge_routing,
    provider_config_schema,
    routing_schema,
)
from trunkline.control_api.call_settings import CallSettings, merge_call_settings
from trunkline.control_api.errors import ApiError
from trunkline.control_api.keys import INVENTORY, SETTINGS
from trunkline.control_api.number_rules import (
    IDENTITY_SCOPE_FORBIDDEN,
    cap_reached,
    number_options,
)
from trunkline.control_api.route_table import Ctx, Reply, Route, uuid_param
from trunkline.control_api.schema import obj, string
from trunkline.storage.errors import NumberCapReached, NumberInUse
from trunkline.storage.models import PhoneNumber, new_id, utcnow

log = logging.getLogger("trunkline.api.numbers")

ACQUIRE_ATTEMPTS = 3
NUMBER_ID = uuid_param(
    "phone_number_id", "Phone number not found", "Unique identifier of the phone number"
)

PROVISION_BODY = obj(
    {
        "agent_handle": string(
            min_length=1,
            max_length=100,
            pattern=r"^@?[^\s@/]+$",
            error="must be an agent identity handle such as sales-agent",
            description="Handle of the agent identity to assign the number to (leading @ stripped)",
        ),
        "type": string(enum=("toll_free", "local"), description='Default "toll_free"'),
        "state": shapes.STATE,
        "incoming_call_action": shapes.ACTION,
        "client_websocket_url": shapes.WS_URL,
        "incoming_call_webhook_url": shapes.WEBHOOK_URL,
        "agent_protocol": shapes.AGENT_PROTOCOL,
        "agent_audio": shapes.AGENT_AUDIO,
        "recording_enabled": {"type": "boolean"},
    },
    required=("agent_handle",),
)

UPDATE_BODY = obj(
    {
        "incoming_call_action": shapes.ACTION,
        "client_websocket_url": shapes.WS_URL,
        "incoming_call_webhook_url": shapes.WEBHOOK_URL,
        "agent_protocol": shapes.AGENT_PROTOCOL,
        "agent_audio": shapes.AGENT_AUDIO,
        "recording_enabled": {"type": "boolean"},
        "friendly_name": FRIENDLY_NAME,
        "provider_config": provider_config_schema(partial=True),
        "inbound_routing": routing_schema(),
    }
)


def _inventory(ctx: Ctx) -> NumberInventory:
    inventory = ctx.request.app[INVENTORY]
    if inventory is None:
        raise ApiError(503, "number provisioning is not available: no number inventory configured")
    return inventory


def _check_state(state: str | None) -> None:
    if state is not None and state not in US_STATES:
        raise ApiError(422, "state: must be a two-letter US state code such as NY")


async def provision_number(ctx: Ctx) -> web.Response:
    body = ctx.body
    handle = body["agent_handle"].removeprefix("@")
    identity = await ctx.identities.get_identity_by_handle(ctx.principal.organization_id, handle)
    if not ctx.principal.is_admin and (
        identity is None or identity.id != ctx.principal.agent_identity_id
    ):
        raise ApiError(403, IDENTITY_SCOPE_FORBIDDEN)
    if identity is None:
        raise ApiError(404, f"Agent identity not found: {handle}")
    number_type = body.get("type", "toll_free")
    state = body.get("state")
    _check_state(state)
    settings = ctx.request.app[SETTINGS]
    call = merge_call_settings(CallSettings("auto_reject", None, None), body, settings)
    cap = settings.api.max_numbers_per_org
    held = await ctx.numbers.list_numbers(ctx.principal.organization_id)
    if sum(1 for n in held if n.status != "released") >= cap:
        raise cap_reached(cap)
    inventory = _inventory(ctx)
    for _ in range(ACQUIRE_ATTEMPTS):
        try:
            acquired = await inventory.acquire(
                number_type, state if number_type == "local" else None
            )
        except NoInventory as exc:
            raise ApiError(404, str(exc)) from None
        except CarrierError as exc:
            raise ApiError(502, f"Carrier provisioning failed: {exc}") from None
        now = utcnow()
        record = PhoneNumber(
            id=new_id(),
            organization_id=ctx.principal.organization_id,
            number=acquired.number,
            type=number_type,
            status="active",
            incoming_call_action=call.incoming_call_action,
            client_websocket_url=call.client_websocket_url,
            incoming_call_webhook_url=call.incoming_call_webhook_url,
            agent_identity_id=identity.id,
            state=acquired.state,
            country=acquired.country,
            created_at=now,
            updated_at=now,
            carrier_order_id=acquired.carrier_order_id,
            **number_options(body),
        )
        try:
            stored = await ctx.numbers.create_number(record, max_active=cap)
        except NumberCapReached:
            await _give_back(ctx, acquired.number)
            raise cap_reached(cap) from None
        except NumberInUse:
            continue  # taken meanwhile by another process; ask for another one
        log.info(
            "provisioned number",
            extra={"phone_number_id": stored.id, "inventory": inventory.name},
        )
        return web.json_response(serialize.phone_number(stored), status=201)
    raise ApiError(502, "Carrier provisioning failed: every number offered was already in use")


async def _give_back(ctx: Ctx, number: str) -> None:
    try:
        await _inventory(ctx).release(number)
    except CarrierError as exc:
        log.error("could not return an unused number to the carrier: %s", exc)


async def list_numbers(ctx: Ctx) -> web.Response:
    numbers = await ctx.numbers.list_numbers(
        ctx.principal.organization_id, agent_identity_id=ctx.principal.agent_identity_id
    )
    return web.json_response([serialize.phone_number(n) for n in numbers])


async def get_number(ctx: Ctx) -> web.Response:
    number = await load_number(ctx, ctx.path["phone_number_id"])
    return web.json_response(serialize.phone_number(number))


async def update_number(ctx: Ctx) -> web.Response:
    number = await load_number(ctx, ctx.path["phone_number_id"], allow_released=False)
    body = ctx.body
    changes: dict[str, Any] = {}
    current = CallSettings(
        number.incoming_call_action, number.client_websocket_url, number.incoming_call_webhook_url
    )
    merged = merge_call_settings(current, body, ctx.request.app[SETTINGS])
    if merged != current:
        changes.update(
            incoming_call_action=merged.incoming_call_action,
            client_websocket_url=merged.client_websocket_url,
            incoming_call_webhook_url=merged.incoming_call_webhook_url,
        )
    changes.update(number_options(body))
    if "friendly_name" in body:
        changes["friendly_name"] = body["friendly_name"]
    if "provider_config" in body:
        changes.update(merge_provider_config(ctx, number, body["provider_config"]))
    if "inbound_routing" in body:
        changes["inbound_routing"] = await merge_routing(
            ctx, number.inbound_routing, body["inbound_routing"]
        )
    if not changes:
        return web.json_response(serialize.phone_number(number))
    updated = await ctx.numbers.update_number(number.id, changes)
    if updated is None:
        raise ApiError(404, "Phone number not found")
    return web.json_response(serialize.phone_number(updated))


async def release_number(ctx: Ctx) -> web.Response:
    number = await load_number(
        ctx, ctx.path["phone_number_id"], allow_released=False, not_found="Phone number not found"
    )
    if number.provider is None:
        try:
            await _inventory(ctx).release(number.number)
        except CarrierError as exc:
            raise ApiError(502, f"Carrier release failed: {exc}") from None
    if await ctx.numbers.release_number(number.id) is None:
        raise ApiError(404, "Phone number not found")
    log.info("released number", extra={"phone_number_id": number.id})
    return web.Response(status=204)


_NUMBER_ERRORS = {
    403: Reply("Number does not belong to your organization"),
    404: Reply("Phone number not found"),
}

ROUTES = [
    Route(
        "POST",
        "/numbers",
        provision_number,
        operation_id="provision_phone_number",
        summary="Provision a new toll-free or local phone number",
        tag="Phone Numbers",
        body=PROVISION_BODY,
        responses={
            201: Reply("The provisioned number", shapes.component("PhoneNumber")),
            403: Reply("Identity-scoped token naming another identity"),
            404: Reply("No available numbers matching the criteria, or no such agent"),
            429: Reply(
                "Organization already has the maximum number of active phone numbers",
                headers={"Retry-After": "Seconds to wait before retrying"},
            ),
            502: Reply("Carrier provisioning failed"),
        },
    ),
    Route(
        "GET",
        "/numbers",
        list_numbers,
        operation_id="list_phone_numbers",
        summary="List the organization's phone numbers",
        tag="Phone Numbers",
        responses={200: Reply("Phone numbers, oldest first", shapes.list_of("PhoneNumber"))},
    ),
    Route(
        "GET",
        "/numbers/{phone_number_id}",
        get_number,
        operation_id="get_phone_number",
        summary="Get a phone number",
        tag="Phone Numbers",
        params=(NUMBER_ID,),
        responses={200: Reply("The number", shapes.component("PhoneNumber")), **_NUMBER_ERRORS},
    ),
    Route(
        "PATCH",
        "/numbers/{phone_number_id}",
        update_number,
        operation_id="update_phone_number",
        summary="Update incoming-call handling, agent options or trunk settings",
        tag="Phone Numbers",
        params=(NUMBER_ID,),
        body=UPDATE_BODY,
        responses={
            200: Reply("The updated number", shapes.component("PhoneNumber")),
            **_NUMBER_ERRORS,
        },
    ),
    Route(
        "DELETE",
        "/numbers/{phone_number_id}",
        release_number,
        operation_id="release_phone_number",
        summary="Release a phone number",
        tag="Phone Numbers",
        params=(NUMBER_ID,),
        responses={
            204: Reply("Released"),
            **_NUMBER_ERRORS,
            502: Reply("Carrier release failed"),
        },
    ),
]
