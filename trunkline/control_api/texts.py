"""Texts (seed 003): list, get, mark read or delete, search, conversations; sending SMS.

All under ``/numbers/{phone_number_id}/texts``. Lists are newest first and
leave deleted texts out. MMS media items carry a presigned URL that expires
after an hour. A number of another organisation is 403 on the list-style
endpoints and 404 on the single-text ones, as the seed documents.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from aiohttp import web

from trunkline.control_api import serialize, shapes
from trunkline.control_api.access import load_number
from trunkline.control_api.calls import LIMIT, NUMBER_ID, OFFSET
from trunkline.control_api.errors import ApiError
from trunkline.control_api.keys import BLOB_STORE, TEXT_SENDER
from trunkline.control_api.presigned_media import presigner
from trunkline.control_api.route_table import Ctx, Param, Reply, Route, uuid_param
from trunkline.control_api.schema import boolean, obj, string
from trunkline.messaging.outbound import SendError
from trunkline.messaging.text_json import text_json
from trunkline.storage.models import PhoneNumber, Text, new_id, utcnow

TEXT_NOT_FOUND = "Text not found"
TEXT_ID = uuid_param("text_id", TEXT_NOT_FOUND, "Unique identifier of the text message")
REMOTE_NUMBER = Param(
    "remote_number",
    "path",
    string(pattern=shapes.REMOTE_NUMBER_PATTERN, max_length=16),
    "The remote party's E.164 number or short code",
    required=True,
    not_found="Conversation not found",
)
UPDATE_BODY = obj(
    {
        "is_read": boolean(description="Mark as read (true) or unread (false)"),
        "status": string(enum=("deleted",), description='Only "deleted" is accepted'),
    }
)
CONVERSATION_BODY = obj({"is_read": boolean()}, required=("is_read",))
MAX_SMS_CHARACTERS = 1600
MAX_RECIPIENTS_PER_WINDOW = 100
RECIPIENT_WINDOW_SECONDS = 24 * 3600


def _media_url(ctx: Ctx) -> serialize.MediaUrl:
    return presigner(ctx.request.app[BLOB_STORE])


async def _number(ctx: Ctx, *, single_text: bool = False) -> PhoneNumber:
    if single_text:
        return await load_number(
            ctx,
            ctx.path["phone_number_id"],
            foreign_status=404,
            allow_released=False,
            not_found=TEXT_NOT_FOUND,
        )
    return await load_number(ctx, ctx.path["phone_number_id"], allow_released=False)


async def list_texts(ctx: Ctx) -> web.Response:
    number = await _number(ctx)
    texts = await ctx.texts.list_texts(
        number.id,
        is_read=ctx.query["is_read"],
        limit=ctx.query["limit"],
        offset=ctx.query["offset"],
    )
    media_url = _media_url(ctx)
    return web.json_response([text_json(t, media_url) for t in texts])


async def get_text(ctx: Ctx) -> web.Response:
    number = await _number(ctx, single_text=True)
    record = await ctx.texts.get_text(number.id, ctx.path["text_id"])
    if record is None:
        raise ApiError(404, TEXT_NOT_FOUND)
    return web.json_response(text_json(record, _media_url(ctx)))


async def update_text(ctx: Ctx) -> web.Response:
    number = await _number(ctx, single_text=True)
    body = ctx.body
    text_id = ctx.path["text_id"]
    if "is_read" not in body and "status" not in body:
        record = await ctx.texts.get_text(number.id, text_id)
    else:
        record = await ctx.texts.update_text(
            number.id,
            text_id,
            is_read=body.get("is_read"),
            deleted=body.get("status") == "deleted",
        )
    if record is None:
        raise ApiError(404, TEXT_NOT_FOUND)
    return web.json_response(text_json(record, _media_url(ctx)))


async def search_texts(ctx: Ctx) -> web.Response:
    number = await _number(ctx)
    query: str = ctx.query["q"]
    if not query.strip():
        raise ApiError(422, "q: must not be blank")
    texts = await ctx.texts.search_texts(number.id, query, limit=ctx.query["limit"])
    media_url = _media_url(ctx)
    return web.json_response([text_json(t, media_url) for t in texts])


async def list_conversations(ctx: Ctx) -> web.Response:
    number = await _number(ctx)
    rows = await ctx.texts.list_conversations(
        number.id, limit=ctx.query["limit"], offset=ctx.query["offset"]
    )
    return web.json_response([serialize.conversation(c) for c in rows])


async def get_conversation(ctx: Ctx) -> web.Response:
    number = await _number(ctx)
    texts = await ctx.texts.list_conversation(
        number.id,
        ctx.path["remote_number"],
        limit=ctx.query["limit"],
        offset=ctx.query["offset"],
    )
    media_url = _media_url(ctx)
    return web.json_response([text_json(t, media_url) for t in texts])


async def update_conversation(ctx: Ctx) -> web.Response:
    number = await _number(ctx)
    remote = ctx.path["remote_number"]
    is_read: bool = ctx.body["is_read"]
    count = await ctx.texts.mark_conversation_read(number.id, remote, is_read)
    return web.json_response(
        {"remote_phone_number": remote, "is_read": is_read, "updated_count": count}
    )


SEND_BODY = obj(
    {
        "to": shapes.E164,
        "text": string(min_length=1, max_length=MAX_SMS_CHARACTERS, description="Message body"),
    },
    required=("to", "text"),
)


async def send_text(ctx: Ctx) -> web.Response:
    """Send an SMS from the number; 429 ``sender_rate_limited`` past the recipient limit."""
    number = await _number(ctx)
    to: str = ctx.body["to"]
    body: str = ctx.body["text"]
    if not body.strip():
        raise ApiError(422, "text: must not be blank")
    if to == number.number:
        raise ApiError(422, "to: a number cannot text itself")
    now = utcnow()
    since = now - timedelta(seconds=RECIPIENT_WINDOW_SECONDS)
    recipients = await ctx.texts.count_outbound_recipients_since(number.id, since.timestamp())
    if recipients >= MAX_RECIPIENTS_PER_WINDOW and not await _texted_recently(
        ctx, number, to, since
    ):
        raise ApiError(
            429,
            f"sender_rate_limited: at most {MAX_RECIPIENTS_PER_WINDOW} distinct recipients"
            " per 24 hours",
            headers={"Retry-After": "3600"},
        )
    try:
        sent = await ctx.request.app[TEXT_SENDER].send(number.number, to, body)
    except SendError as exc:
        raise ApiError(502, str(exc)) from None
    stamp = utcnow()
    record, _ = await ctx.texts.insert_text(
        Text(
            id=new_id(),
            organization_id=number.organization_id,
            phone_number_id=number.id,
            direction="outbound",
            local_phone_number=number.number,
            remote_phone_number=to,
            text=body,
            type="sms",
            media=None,
            status="active",
            is_read=True,
            created_at=stamp,
            updated_at=stamp,
            carrier_message_id=f"{sent.carrier}:{sent.carrier_message_id}",
            delivery_status=sent.delivery_status,
        )
    )
    return web.json_response(text_json(record, _media_url(ctx)), status=201)


async def _texted_recently(ctx: Ctx, number: PhoneNumber, to: str, since: datetime) -> bool:
    recent = await ctx.texts.list_conversation(number.id, to, limit=200)
    return any(t.direction == "outbound" and t.created_at >= since for t in recent)


_LIST_ERRORS = {
    403: Reply("Phone number belongs to a different organization"),
    404: Reply("Phone number not found or released"),
}
_TEXTS = shapes.list_of("Text")
_PREFIX = "/numbers/{phone_number_id}/texts"

# Fixed segments (search, conversations) are registered before /{text_id}.
ROUTES = [
    Route(
        "POST",
        _PREFIX,
        send_text,
        operation_id="send_text",
        summary="Send an SMS from this number",
        tag="Texts",
        params=(NUMBER_ID,),
        body=SEND_BODY,
        responses={
            201: Reply("The outbound text", shapes.component("Text")),
            429: Reply("sender_rate_limited: too many distinct recipients in 24 hours"),
            502: Reply("The carrier refused or could not be reached"),
            **_LIST_ERRORS,
        },
    ),
    Route(
        "GET",
        _PREFIX,
        list_texts,
        operation_id="list_texts",
        summary="List SMS and MMS messages, newest first",
        tag="Texts",
        params=(
            NUMBER_ID,
            LIMIT,
            OFFSET,
            Param("is_read", "query", boolean(), "Filter by read state"),
        ),
        responses={200: Reply("Texts, newest first", _TEXTS), **_LIST_ERRORS},
    ),
    Route(
        "GET",
        f"{_PREFIX}/search",
        search_texts,
        operation_id="search_texts",
        summary="Full-text search across text messages",
        tag="Texts",
        params=(
            NUMBER_ID,
            Param(
                "q",
                "query",
                string(min_length=1, max_length=500),
                "Search query (1-500 characters)",
                required=True,
            ),
            LIMIT,
        ),
        responses={200: Reply("Texts, best match first", _TEXTS), **_LIST_ERRORS},
    ),
    Route(
        "GET",
        f"{_PREFIX}/conversations",
        list_conversations,
        operation_id="list_conversations",
        summary="One summary per remote number, most recent first",
        tag="Texts",
        params=(NUMBER_ID, LIMIT, OFFSET),
        responses={
            200: Reply("Conversations", shapes.list_of("Conversation")),
            **_LIST_ERRORS,
        },
    ),
    Route(
        "GET",
        f"{_PREFIX}/conversations/{{remote_number}}",
        get_conversation,
        operation_id="get_conversation",
        summary="Messages with one remote number, newest first",
        tag="Texts",
        params=(NUMBER_ID, REMOTE_NUMBER, LIMIT, OFFSET),
        responses={200: Reply("Texts, newest first", _TEXTS), **_LIST_ERRORS},
    ),
    Route(
        "PATCH",
        f"{_PREFIX}/conversations/{{remote_number}}",
        update_conversation,
        operation_id="update_conversation",
        summary="Mark every message of a conversation read or unread",
        tag="Texts",
        params=(NUMBER_ID, REMOTE_NUMBER),
        body=CONVERSATION_BODY,
        responses={
            200: Reply("How many messages changed", shapes.component("ConversationUpdate")),
            **_LIST_ERRORS,
        },
    ),
    Route(
        "GET",
        f"{_PREFIX}/{{text_id}}",
        get_text,
        operation_id="get_text",
        summary="Get a text message",
        tag="Texts",
        params=(NUMBER_ID, TEXT_ID),
        responses={
            200: Reply("The text", shapes.component("Text")),
            404: Reply("Text not found, wrong phone number, or wrong organization"),
        },
    ),
    Route(
        "PATCH",
        f"{_PREFIX}/{{text_id}}",
        update_text,
        operation_id="update_text",
        summary="Mark a text read or unread, or delete it",
        tag="Texts",
        params=(NUMBER_ID, TEXT_ID),
        body=UPDATE_BODY,
        responses={
            200: Reply("The updated text", shapes.component("Text")),
            404: Reply("Text not found, wrong phone number, or wrong organization"),
        },
    ),
]
