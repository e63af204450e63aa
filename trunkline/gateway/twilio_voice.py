"""Twilio's voice webhook: ``POST /carrier/twilio/voice`` answers a call with a media stream.

Twilio posts the call (``CallSid``, ``To``, ``From``) signed with
``X-Twilio-Signature``; trunkline answers with TwiML that connects the call
to ``/carrier/twilio/media-stream``, passing the numbers and a short-lived
stream token as ``<Parameter>``s. The stream is accepted only with that token
for that call (``carriers.stream_tokens``), so a captured stream upgrade
cannot open streams for calls trunkline never answered.
"""

from __future__ import annotations

import time
from xml.sax.saxutils import quoteattr

from aiohttp import web

from trunkline.config import Settings
from trunkline.gateway.carriers.stream_tokens import TOKEN_PARAMETER, issue_stream_token
from trunkline.messaging.carrier_formats import SignatureError, verify_twilio

MAX_WEBHOOK_BYTES = 64 * 1024
MAX_FIELD_CHARS = 64


def _detail(status: int, detail: str) -> web.Response:
    return web.json_response({"detail": detail}, status=status)


def stream_twiml(stream_url: str, parameters: dict[str, str]) -> str:
    """``<Connect><Stream>`` TwiML passing ``parameters`` to the stream's ``start``."""
    items = "".join(
        f"<Parameter name={quoteattr(name)} value={quoteattr(value)}/>"
        for name, value in parameters.items()
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
        f"<Stream url={quoteattr(stream_url)}>{items}</Stream></Connect></Response>"
    )


async def twilio_voice(request: web.Request, settings: Settings) -> web.Response:
    auth_token = settings.carriers.twilio_auth_token
    if not auth_token:
        return _detail(403, "Twilio calls are refused: no Twilio auth token is set")
    if (request.content_length or 0) > MAX_WEBHOOK_BYTES:
        return _detail(413, f"Webhook body too large: at most {MAX_WEBHOOK_BYTES} bytes")
    form = await request.post()
    fields = [(k, v) for k, v in form.items() if isinstance(v, str)]
    base = settings.api.effective_public_url
    try:
        verify_twilio(request.headers, base + request.path_qs, fields, auth_token)
    except SignatureError as exc:
        return _detail(403, str(exc))
    values = dict(fields)
    call_sid, to, caller = values.get("CallSid", ""), values.get("To", ""), values.get("From", "")
    if not call_sid or max(len(call_sid), len(to), len(caller)) > MAX_FIELD_CHARS:
        return _detail(422, f"CallSid is required; CallSid, To and From at most {MAX_FIELD_CHARS}")
    expires = int(time.time() + settings.carriers.twilio_stream_token_seconds)
    scheme, _, rest = base.partition("://")
    stream_url = f"{'wss' if scheme == 'https' else 'ws'}://{rest}/carrier/twilio/media-stream"
    token = issue_stream_token(auth_token, call_sid, to, caller, expires)
    twiml = stream_twiml(stream_url, {"to": to, "from": caller, TOKEN_PARAMETER: token})
    return web.Response(text=twiml, content_type="text/xml")


def add_routes(app: web.Application, settings: Settings) -> None:
    async def voice(request: web.Request) -> web.Response:
        return await twilio_voice(request, settings)

    app.router.add_post("/carrier/twilio/voice", voice)
