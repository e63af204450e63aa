"""Carrier SMS/MMS webhooks: ``POST /carrier/telnyx/messages`` and ``/carrier/twilio/messages``.

Authenticated by the carrier's signature, not a service token: a request that
is not provably from the carrier gets 403 and nothing is stored. Each accepted
message becomes an inbound text (deduplicated on the carrier's message id)
and a ``text.received`` event; delivery reports update outbound texts. A
carrier's message is kept even when it holds characters no backend can store
(NUL, lone surrogates): each becomes U+FFFD rather than the message being lost.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from aiohttp import web

from trunkline.control_api.keys import OUTBOX, SETTINGS, TEXT_INGRESS
from trunkline.control_api.schema import replace_unstorable
from trunkline.messaging.carrier_formats import (
    DeliveryReport,
    InboundMessage,
    PayloadError,
    SignatureError,
    parse_telnyx,
    parse_twilio,
    telnyx_public_key,
    verify_telnyx,
    verify_twilio,
)
from trunkline.messaging.ingress import UnknownNumber
from trunkline.messaging.mms_fetch import MediaError

log = logging.getLogger("trunkline.carrier.texts")
MAX_WEBHOOK_BYTES = 256 * 1024
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def _detail(status: int, detail: str) -> web.Response:
    return web.json_response({"detail": detail}, status=status)


async def _read_capped(request: web.Request) -> bytes | None:
    if (request.content_length or 0) > MAX_WEBHOOK_BYTES:
        return None
    body = await request.content.read(MAX_WEBHOOK_BYTES + 1)
    return None if len(body) > MAX_WEBHOOK_BYTES else body


def _storable(item: InboundMessage) -> InboundMessage:
    """The message with unstorable characters in its text and addresses replaced."""
    return replace(
        item,
        carrier_message_id=replace_unstorable(item.carrier_message_id),
        from_number=replace_unstorable(item.from_number),
        to_number=replace_unstorable(item.to_number),
        text=None if item.text is None else replace_unstorable(item.text),
    )


async def _store(
    app: web.Application, carrier: str, item: InboundMessage | DeliveryReport | None
) -> web.Response | None:
    """None when stored (or ignored); else the error response."""
    if item is None:
        return None
    ingress = app[TEXT_INGRESS]
    if isinstance(item, DeliveryReport):
        await ingress.delivery_report(carrier, item)
        return None
    try:
        text, inserted = await ingress.receive(_storable(item))
    except UnknownNumber:
        return _detail(404, "No active number matches the recipient")
    except MediaError as exc:
        log.warning("mms media refused", extra={"carrier": carrier, "reason": str(exc)})
        return _detail(422, f"media: {exc}")
    outbox = app[OUTBOX]
    if inserted and outbox is not None:
        outbox.wake()
    log.info(
        "text received",
        extra={"carrier": carrier, "text_id": text.id, "duplicate": not inserted},
    )
    return None


async def telnyx_messages(request: web.Request) -> web.Response:
    encoded_key = request.app[SETTINGS].carriers.telnyx_public_key
    if not encoded_key:
        return _detail(403, "Telnyx ingress is not configured (TRUNKLINE_TELNYX_PUBLIC_KEY)")
    body = await _read_capped(request)
    if body is None:
        return _detail(413, f"Webhook body too large: at most {MAX_WEBHOOK_BYTES} bytes")
    try:
        verify_telnyx(request.headers, body, telnyx_public_key(encoded_key), time.time())
        item = parse_telnyx(body)
    except SignatureError as exc:
        return _detail(403, str(exc))
    except PayloadError as exc:
        return _detail(422, str(exc))
    failure = await _store(request.app, "telnyx", item)
    return failure or web.json_response({"status": "ok"})


async def twilio_messages(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    auth_token = settings.carriers.twilio_auth_token
    if not auth_token:
        return _detail(403, "Twilio ingress is not configured (TRUNKLINE_TWILIO_AUTH_TOKEN)")
    if (request.content_length or 0) > MAX_WEBHOOK_BYTES:
        return _detail(413, f"Webhook body too large: at most {MAX_WEBHOOK_BYTES} bytes")
    form = await request.post()
    fields = [(k, v) for k, v in form.items() if isinstance(v, str)]
    url = settings.api.effective_public_url + request.path_qs
    try:
        verify_twilio(request.headers, url, fields, auth_token)
        item = parse_twilio(fields)
    except SignatureError as exc:
        return _detail(403, str(exc))
    except PayloadError as exc:
        return _detail(422, str(exc))
    failure = await _store(request.app, "twilio", item)
    return failure or web.Response(text=EMPTY_TWIML, content_type="text/xml")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/carrier/telnyx/messages", telnyx_messages)
    app.router.add_post("/carrier/twilio/messages", twilio_messages)
