"""Who one API request comes from, settled once per request.

The rate limiter needs the caller before it can pick a bucket, and the route
wrapper needs it to authorise; both ask ``settle``, which authenticates the
first time and keeps the outcome (the ``Principal``, or the 401 ``ApiError``)
on the request, so a token is looked up once however often it is asked for.
"""

from __future__ import annotations

from aiohttp import web

from trunkline.control_api.auth import Principal, authenticate
from trunkline.control_api.errors import ApiError
from trunkline.storage.fairness import API_AUTH_TENANT, database_work
from trunkline.storage.stores import IdentityStore

CALLER: web.RequestKey[Principal | ApiError] = web.RequestKey("caller")


async def settle(request: web.Request, identities: IdentityStore) -> Principal | ApiError:
    """The request's Principal, or the ApiError(401) authentication ended with."""
    known = request.get(CALLER)
    if known is not None:
        return known
    outcome: Principal | ApiError
    try:
        with database_work(API_AUTH_TENANT):  # the organisation is not known yet
            outcome = await authenticate(request.headers, identities)
    except ApiError as exc:
        outcome = exc
    request[CALLER] = outcome
    return outcome


async def principal(request: web.Request, identities: IdentityStore) -> Principal:
    """The request's Principal; raises the 401 when authentication failed."""
    outcome = await settle(request, identities)
    if isinstance(outcome, ApiError):
        raise outcome
    return outcome
