"""Request rate limits on the API, with ``X-RateLimit-*`` headers.

Requests that authenticate spend from their service token's bucket, keyed by
the token's id: ``TRUNKLINE_API_RATE_PER_SECOND`` per second with a burst of
``TRUNKLINE_API_RATE_BURST``. Every other request (no token, an unknown or
malformed one) spends from its client address's bucket:
``TRUNKLINE_API_UNAUTHENTICATED_RATE_PER_SECOND`` with a burst of
``TRUNKLINE_API_UNAUTHENTICATED_BURST``. Only authenticated tokens create
token buckets, so made-up keys cannot fill that table and push a real token's
bucket out; the address table holds at most
``TRUNKLINE_API_UNAUTHENTICATED_MAX_ADDRESSES`` addresses and forgets the least
recently seen first. An address whose budget is spent is answered 429 before
any token it sends is looked up, so guessing costs the database nothing.

Every API response says where the caller stands (``X-RateLimit-Limit``,
``-Remaining``, ``-Reset`` in seconds); beyond the limit the answer is 429 with
``Retry-After``. Refusals are counted in ``trunkline_api_requests_refused``
by bucket, forgotten buckets in ``trunkline_api_rate_buckets_evicted``. The
client address is the TCP peer (forwarded-for headers are not trusted); IPv6
peers are counted by their /64, the block one subscriber usually holds, so
rotating through it buys no fresh budget.
"""

from __future__ import annotations

import ipaddress
import math
import time
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

from trunkline.config import Settings
from trunkline.control_api.caller import settle
from trunkline.control_api.errors import API_ROOT, Handler, error_response
from trunkline.control_api.keys import REPOSITORY
from trunkline.metrics import API_RATE_BUCKETS_EVICTED, API_REQUESTS_REFUSED
from trunkline.ratelimit import Decision, KeyedBuckets

RATE_LIMITED = "Rate limit exceeded: slow down"
IPV6_CLIENT_PREFIX = 64


def client_key(remote: str | None) -> str:
    """The address bucket a peer spends from: IPv4 as is, IPv6 by its /64."""
    if not remote:
        return ""
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return remote
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False))
    return str(address)


@dataclass(slots=True)
class ApiThrottle:
    """The two bucket tables: valid tokens by id, everyone else by client address."""

    tokens: KeyedBuckets
    addresses: KeyedBuckets

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiThrottle:
        return cls(
            tokens=KeyedBuckets(
                settings.api.rate_per_second,
                settings.api.rate_burst,
                on_evict=API_RATE_BUCKETS_EVICTED.labels("token").inc,
            ),
            addresses=KeyedBuckets(
                settings.api.unauthenticated_rate_per_second,
                settings.api.unauthenticated_burst,
                settings.api.unauthenticated_max_addresses,
                on_evict=API_RATE_BUCKETS_EVICTED.labels("address").inc,
            ),
        )


THROTTLE: web.AppKey[ApiThrottle] = web.AppKey("throttle", ApiThrottle)


def _headers(buckets: KeyedBuckets, decision: Decision) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(int(buckets.burst)),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": str(math.ceil(decision.reset_after)),
    }


def _refusal(buckets: KeyedBuckets, decision: Decision, bucket: str) -> web.Response:
    API_REQUESTS_REFUSED.labels(bucket).inc()
    headers = _headers(buckets, decision)
    headers["Retry-After"] = str(max(1, math.ceil(decision.retry_after)))
    return error_response(429, RATE_LIMITED, headers)


def rate_limit_middleware(throttle: ApiThrottle) -> Middleware:
    tokens, addresses = throttle.tokens, throttle.addresses

    @web.middleware
    async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(API_ROOT):
            return await handler(request)
        address = client_key(request.remote)
        now = time.monotonic()
        spent = addresses.peek(address, now)
        if not spent.allowed:
            addresses.refused += 1
            return _refusal(addresses, spent, "address")
        caller = await settle(request, request.app[REPOSITORY])
        if isinstance(caller, Exception):
            buckets, bucket, decision = addresses, "address", addresses.take(address, now)
        else:
            buckets, bucket, decision = tokens, "token", tokens.take(caller.token_id, now)
        if not decision.allowed:
            return _refusal(buckets, decision, bucket)
        response = await handler(request)
        if not response.prepared:
            response.headers.update(_headers(buckets, decision))
        return response

    return rate_limit
