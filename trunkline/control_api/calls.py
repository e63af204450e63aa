"""Calls and transcripts: list, get, hang up, transcripts, transcript search.

Placing a call is ``place_call``.

Seed paths live under ``/numbers/{phone_number_id}/calls``; the Inkbox SDK's
flat paths (``/calls``, ``/calls/{id}``, ``/calls/{id}/transcripts``,
``/calls/{id}/hangup``) are served too. Call status changes go through
``CallLifecycle`` (one conditional write per change, ``call.ended`` queued in
the same transaction), so an API hang-up racing the caller's BYE has exactly
one winner.
"""

from __future__ import annotations

import logging

from aiohttp import web

from trunkline.calls.lifecycle import CallLifecycle
from trunkline.control_api import serialize, shapes
from trunkline.control_api.access import load_call, load_number
from trunkline.control_api.errors import ApiError
from trunkline.control_api.keys import BLOB_STORE, CALL_CONTROL, REPOSITORY
from trunkline.control_api.presigned_media import presigner
from trunkline.control_api.route_table import Ctx, Param, Reply, Route, uuid_param
from trunkline.control_api.schema import boolean, integer, string
from trunkline.storage.models import CALL_ENDED_STATUSES, Call, CallStatus

log = logging.getLogger("trunkline.api.calls")

ALREADY_ENDED = "Call has already ended"
HANGUP_ATTEMPTS = 4  # status only moves forward, so a few re-reads always settle

NUMBER_ID = uuid_param(
    "phone_number_id", "Phone number not found or released", "Unique identifier of the phone number"
)
CALL_ID = uuid_param("call_id", "Call not found", "Unique identifier of the call")
LIMIT = Param("limit", "query", integer(minimum=1, maximum=200, default=50), "1-200", default=50)
OFFSET = Param(
    "offset", "query", integer(minimum=0, maximum=1_000_000, default=0), "Offset", default=0
)


async def list_calls(ctx: Ctx) -> web.Response:
    principal = ctx.principal
    named: str | None = ctx.query["agent_identity_id"]
    if (
        not principal.is_admin
        and named is not None
        and named.lower() != principal.agent_identity_id
    ):
        raise ApiError(403, "Identity-scoped tokens cannot name another agent identity")
    identity = principal.agent_identity_id if not principal.is_admin else named
    calls = await ctx.calls.list_calls(
        principal.organization_id,
        agent_identity_id=identity.lower() if identity else None,
        live=ctx.query["live"],
        limit=ctx.query["limit"],
        offset=ctx.query["offset"],
    )
    return web.json_response(
        [serialize.call(c, presigner(ctx.request.app[BLOB_STORE])) for c in calls]
    )


async def list_number_calls(ctx: Ctx) -> web.Response:
    number = await load_number(ctx, ctx.path["phone_number_id"], allow_released=False)
    calls = await ctx.calls.list_calls(
        ctx.principal.organization_id,
        phone_number_id=number.id,
        limit=ctx.query["limit"],
        offset=ctx.query["offset"],
    )
    return web.json_response(
        [serialize.call(c, presigner(ctx.request.app[BLOB_STORE])) for c in calls]
    )


async def get_call(ctx: Ctx) -> web.Response:
    record = await load_call(ctx, ctx.path["call_id"])
    return web.json_response(serialize.call(record, presigner(ctx.request.app[BLOB_STORE])))


async def get_number_call(ctx: Ctx) -> web.Response:
    number = await load_number(ctx, ctx.path["phone_number_id"], allow_released=False)
    record = await load_call(ctx, ctx.path["call_id"], phone_number_id=number.id)
    return web.json_response(serialize.call(record, presigner(ctx.request.app[BLOB_STORE])))


async def call_transcripts(ctx: Ctx) -> web.Response:
    record = await load_call(ctx, ctx.path["call_id"])
    segments = await ctx.calls.list_transcripts(record.id)
    return web.json_response([serialize.transcript(s) for s in segments])


async def number_call_transcripts(ctx: Ctx) -> web.Response:
    number = await load_number(ctx, ctx.path["phone_number_id"], allow_released=False)
    record = await load_call(ctx, ctx.path["call_id"], phone_number_id=number.id)
    segments = await ctx.calls.list_transcripts(record.id)
    return web.json_response([serialize.transcript(s) for s in segments])


async def search_transcripts(ctx: Ctx) -> web.Response:
    number = await load_number(ctx, ctx.path["phone_number_id"], allow_released=False)
    query: str = ctx.query["q"]
    if not query.strip():
        raise ApiError(422, "q: must not be blank")
    segments = await ctx.calls.search_transcripts(
        number.id, query, party=ctx.query["party"], limit=ctx.query["limit"]
    )
    return web.json_response([serialize.transcript(s) for s in segments])


async def hang_up(app: web.Application, record: Call) -> Call:
    """End a live call: BYE (or CANCEL before the answer) where it is carried, and the
    record moved to ``completed`` or ``canceled`` with ``hangup_reason: local``.

    Returns the call as stored afterwards (ended, by this request or a racing end);
    ApiError 404 when it vanished, 409 when its status would not settle.
    """
    repository = app[REPOSITORY]
    number = await repository.get_number(record.phone_number_id)
    identity_id = number.agent_identity_id if number is not None else None
    control = app[CALL_CONTROL].current
    if control is not None:
        try:
            carried = await control.hangup(record)
        except Exception:
            log.exception("hangup on the live call failed", extra={"call_id": record.id})
            carried = False
        log.info("hangup requested", extra={"call_id": record.id, "live_here": carried})
    for _ in range(HANGUP_ATTEMPTS):
        current = await repository.get_call(record.id)
        if current is None:
            raise ApiError(404, "Call not found")
        if current.status in CALL_ENDED_STATUSES:
            return current
        # CallLifecycle is typed against the whole repository, so it is handed the app's.
        lifecycle = CallLifecycle(current, repository, agent_identity_id=identity_id)
        target: CallStatus = "completed" if current.status == "answered" else "canceled"
        if await lifecycle.transition(target, hangup_reason="local"):
            return lifecycle.record
    raise ApiError(409, "Call status kept changing; try again")


async def hangup_call(ctx: Ctx) -> web.Response:
    record = await load_call(ctx, ctx.path["call_id"])
    if record.status in CALL_ENDED_STATUSES:
        raise ApiError(409, ALREADY_ENDED)
    ended = await hang_up(ctx.request.app, record)
    return web.json_response(serialize.call(ended, presigner(ctx.request.app[BLOB_STORE])))


_NUMBER_ERRORS = {
    403: Reply("Number does not belong to your organization"),
    404: Reply("Phone number not found or released"),
}
_CALL_LIST = shapes.list_of("Call")
_TRANSCRIPTS = shapes.list_of("Transcript")

ROUTES = [
    Route(
        "GET",
        "/calls",
        list_calls,
        operation_id="list_calls",
        summary="List calls, newest first",
        tag="Calls",
        params=(
            Param(
                "agent_identity_id",
                "query",
                string(fmt="uuid", max_length=36),
                "Only calls on this identity's numbers",
            ),
            Param(
                "live",
                "query",
                boolean(),
                "Only calls that have not ended (initiated, ringing, answered); trunkline's addition",
                default=False,
            ),
            LIMIT,
            OFFSET,
        ),
        responses={
            200: Reply("Calls, newest first", _CALL_LIST),
            403: Reply("Identity-scoped token naming another identity"),
        },
    ),
    Route(
        "GET",
        "/calls/{call_id}",
        get_call,
        operation_id="get_call",
        summary="Get a call",
        tag="Calls",
        params=(CALL_ID,),
        responses={200: Reply("The call", shapes.component("Call")), 404: Reply("Call not found")},
    ),
    Route(
        "GET",
        "/calls/{call_id}/transcripts",
        call_transcripts,
        operation_id="list_call_transcripts",
        summary="List a call's transcript segments, ordered by sequence",
        tag="Transcripts",
        params=(CALL_ID,),
        responses={200: Reply("Segments", _TRANSCRIPTS), 404: Reply("Call not found")},
    ),
    Route(
        "POST",
        "/calls/{call_id}/hangup",
        hangup_call,
        operation_id="hangup_call",
        summary="Hang up a live call",
        tag="Calls",
        params=(CALL_ID,),
        responses={
            200: Reply("The ended call", shapes.component("Call")),
            404: Reply("Call not found"),
            409: Reply("Call has already ended"),
        },
    ),
    Route(
        "GET",
        "/numbers/{phone_number_id}/calls",
        list_number_calls,
        operation_id="list_number_calls",
        summary="List calls for a phone number, newest first",
        tag="Calls",
        params=(NUMBER_ID, LIMIT, OFFSET),
        responses={200: Reply("Calls, newest first", _CALL_LIST), **_NUMBER_ERRORS},
    ),
    Route(
        "GET",
        "/numbers/{phone_number_id}/calls/{call_id}",
        get_number_call,
        operation_id="get_number_call",
        summary="Get a call on a phone number",
        tag="Calls",
        params=(NUMBER_ID, CALL_ID),
        responses={200: Reply("The call", shapes.component("Call")), **_NUMBER_ERRORS},
    ),
    Route(
        "GET",
        "/numbers/{phone_number_id}/calls/{call_id}/transcripts",
        number_call_transcripts,
        operation_id="list_number_call_transcripts",
        summary="List transcript segments for a call, ordered by sequence",
        tag="Transcripts",
        params=(NUMBER_ID, CALL_ID),
        responses={200: Reply("Segments", _TRANSCRIPTS), **_NUMBER_ERRORS},
    ),
    Route(
        "GET",
        "/numbers/{phone_number_id}/search",
        search_transcripts,
        operation_id="search_transcripts",
        summary="Full-text search across a phone number's transcripts",
        tag="Transcripts",
        params=(
            NUMBER_ID,
            Param(
                "q",
                "query",
                string(min_length=1, max_length=500),
                "Search query (1-500 characters)",
                required=True,
            ),
            Param(
                "party", "query", string(enum=("local", "remote")), "Only this speaker's segments"
            ),
            LIMIT,
        ),
        responses={200: Reply("Segments, best match first", _TRANSCRIPTS), **_NUMBER_ERRORS},
    ),
]
