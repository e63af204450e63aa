"""Twilio's REST hang-up, for agents written for Twilio (the Twilio persona's other half).

An agent on the Twilio persona hangs up the way it would on Twilio:
``POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`` with the form
field ``Status=completed`` (``canceled`` for a call not yet answered) and HTTP
Basic auth — the persona's ``accountSid`` as the user name and a trunkline
service token as the password. pipecat's ``TwilioFrameSerializer`` sends
exactly this on its ``EndFrame`` when pointed here with ``base_url``.

The ``accountSid`` is the one the persona hands out for the token's
organisation (``agent.twilio_protocol.account_sid_for``), compared in
constant time; the ``CallSid`` names the call (``CA`` and the call id's hex
digits). A call of another organisation, or one an identity token may not
see, is "not found" exactly like a call that does not exist, so nothing is
learnt and no one else's call is ended. Answers are Twilio's: the call
resource as JSON, or Twilio's error object (``code``, ``message``,
``more_info``, ``status``). Requests spend from the API's rate-limit buckets
(by address until the token is known, then by token).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import math
import time
from collections.abc import Mapping
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from aiohttp import web

from trunkline.agent.twilio_protocol import account_sid_for, call_id_from_sid, call_sid_for
from trunkline.control_api.auth import Principal, token_principal
from trunkline.control_api.calls import hang_up
from trunkline.control_api.errors import ApiError
from trunkline.control_api.keys import REPOSITORY
from trunkline.control_api.throttle import THROTTLE, client_key
from trunkline.metrics import API_REQUESTS_REFUSED
from trunkline.ratelimit import Decision
from trunkline.storage.fairness import API_AUTH_TENANT, DatabaseBusy, database_work
from trunkline.storage.models import CALL_ENDED_STATUSES, Call

log = logging.getLogger("trunkline.api.twilio")

API_VERSION = "2010-04-01"
CALL_PATH = f"/{API_VERSION}/Accounts/{{account_sid}}/Calls/{{call_sid}}.json"
MAX_FIELD_CHARS = 512

# trunkline's call status → Twilio's
TWILIO_STATUS = {
    "initiated": "queued",
    "ringing": "ringing",
    "answered": "in-progress",
    "completed": "completed",
    "failed": "failed",
    "canceled": "canceled",
}


class TwilioError(Exception):
    """An answer in Twilio's error shape."""

    def __init__(
        self, status: int, code: int, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        body = {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }
        return web.json_response(body, status=self.status, headers=self.headers)


def _unauthenticated() -> TwilioError:
    return TwilioError(401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})


def _too_many(decision: Decision, bucket: str) -> TwilioError:
    API_REQUESTS_REFUSED.labels(bucket).inc()
    retry_after = str(max(1, math.ceil(decision.retry_after)))
    return TwilioError(429, 20429, "Too Many Requests", {"Retry-After": retry_after})


def _not_found(path: str) -> TwilioError:
    return TwilioError(404, 20404, f"The requested resource {path} was not found")


def _date(value: datetime | None) -> str | None:
    return format_datetime(value) if value is not None else None


def call_resource(record: Call, account_sid: str) -> dict[str, Any]:
    """A call as Twilio's Call resource (the fields trunkline has; the rest null)."""
    sid = call_sid_for(record.id)
    inbound = record.direction == "inbound"
    local, remote = record.local_phone_number, record.remote_phone_number
    duration = None
    if record.started_at is not None and record.ended_at is not None:
        duration = str(max(0, int((record.ended_at - record.started_at).total_seconds())))
    return {
        "sid": sid,
        "account_sid": account_sid,
        "parent_call_sid": None,
        "date_created": _date(record.created_at),
        "date_updated": _date(record.updated_at),
        "to": local if inbound else remote,
        "to_formatted": local if inbound else remote,
        "from": remote if inbound else local,
        "from_formatted": remote if inbound else local,
        "phone_number_sid": None,
        "status": TWILIO_STATUS.get(record.status, record.status),
        "start_time": _date(record.started_at),
        "end_time": _date(record.ended_at),
        "duration": duration,
        "price": None,
        "price_unit": "USD",
        "direction": "inbound" if inbound else "outbound-api",
        "answered_by": None,
        "api_version": API_VERSION,
        "forwarded_from": None,
        "caller_name": None,
        "uri": CALL_PATH.format(account_sid=account_sid, call_sid=sid),
        "subresource_uris": {},
    }


async def update_call(request: web.Request) -> web.Response:
    """``POST …/Calls/{CallSid}.json``: ``Status=completed`` or ``canceled`` hangs the call up."""
    try:
        return await _update_call(request)
    except TwilioError as exc:
        return exc.response()
    except DatabaseBusy:
        return TwilioError(
            503, 20503, "Service Unavailable: retry", {"Retry-After": "1"}
        ).response()
    except Exception:
        log.exception("Twilio REST hang-up failed", extra={"path": request.path})
        return TwilioError(500, 20500, "Internal Server Error").response()


async def _update_call(request: web.Request) -> web.Response:
    throttle = request.app[THROTTLE]
    address = client_key(request.remote)
    now = time.monotonic()
    spent = throttle.addresses.peek(address, now)
    if not spent.allowed:
        throttle.addresses.refused += 1
        raise _too_many(spent, "address")
    principal = await _authenticate(request)
    if principal is None:
        throttle.addresses.take(address, now)  # failed guesses spend the address's budget
        raise _unauthenticated()
    decision = throttle.tokens.take(principal.token_id, now)
    if not decision.allowed:
        raise _too_many(decision, "token")
    with database_work(principal.organization_id):
        return await _hang_up(request, principal)


async def _authenticate(request: web.Request) -> Principal | None:
    """The token's Principal when Basic auth names it with its organisation's accountSid."""
    credentials = basic_credentials(request.headers.get("Authorization", ""))
    if credentials is None:
        return None
    login, password = credentials
    try:
        with database_work(API_AUTH_TENANT):  # the organisation is not known yet
            principal = await token_principal(password, request.app[REPOSITORY])
    except ApiError:
        return None
    expected = account_sid_for(principal.organization_id)
    if not hmac.compare_digest(login.encode(), expected.encode()):
        return None  # a token is good only with its own organisation's accountSid
    return principal


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(user name, password) of an ``Authorization: Basic`` header; None when it is not one."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded or len(encoded) > 4 * MAX_FIELD_CHARS:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    login, colon, password = decoded.partition(":")
    if not colon or not login or not password:
        return None
    return login, password


async def _hang_up(request: web.Request, principal: Principal) -> web.Response:
    account_sid = account_sid_for(principal.organization_id)
    path_account = request.match_info.get("account_sid", "")
    if not hmac.compare_digest(path_account.encode(), account_sid.encode()):
        raise _not_found(request.path)
    record = await _visible_call(request, principal)
    form = await request.post()
    status = form.get("Status")
    if status not in ("completed", "canceled"):
        raise TwilioError(
            400, 21200, "Status must be completed or canceled (form-encoded: Status=completed)"
        )
    if record.status in CALL_ENDED_STATUSES:
        raise _not_found(request.path)  # Twilio's answer for a call that has ended
    if status == "canceled" and record.status == "answered":
        raise TwilioError(
            400, 21220, "Invalid call state: canceled ends a call not yet answered; use completed"
        )
    try:
        ended = await hang_up(request.app, record)
    except ApiError as exc:
        if exc.status == 404:
            raise _not_found(request.path) from None
        raise TwilioError(409, 21220, str(exc.detail)) from None
    log.info("Twilio REST hang-up", extra={"call_id": record.id})
    return web.json_response(call_resource(ended, account_sid))


async def _visible_call(request: web.Request, principal: Principal) -> Call:
    """The call the ``CallSid`` names, if the token may see it (else 404, as if none)."""
    call_id = call_id_from_sid(request.match_info.get("call_sid", ""))
    if call_id is None:
        raise _not_found(request.path)
    repository = request.app[REPOSITORY]
    record = await repository.get_call(call_id)
    if record is None or record.organization_id != principal.organization_id:
        raise _not_found(request.path)
    if not principal.is_admin:
        number = await repository.get_number(record.phone_number_id)
        if number is None or not principal.may_see_identity(number.agent_identity_id):
            raise _not_found(request.path)
    return record


def add_routes(app: web.Application) -> None:
    app.router.add_post(CALL_PATH, update_call)
