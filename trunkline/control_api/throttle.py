"""Per-token request rate limits on the API, with ``X-RateLimit-*`` headers.

Each service token (requests without one: each client address) may make
``TRUNKLINE_API_RATE_PER_SECOND`` requests per second with a burst of
``TRUNKLINE_API_RATE_BURST``. Every API response says where the caller stands
(``X-RateLimit-Limit``, ``-Remaining``, ``-Reset`` in seconds); beyond the
limit the answer is 429 with ``Retry-After``. Tokens are keyed by their stored
hash, never kept in the clear.
"""

from __future__ import annotations

import math
import time

from aiohttp import web
from aiohttp.typedefs import Middleware

from trunkline.config import Settings
from trunkline.control_api.auth import TOKEN_HEADERS
from trunkline.control_api.errors import API_ROOT, Handler, error_response
from trunkline.crypto import hash_token
from trunkline.ratelimit import KeyedBuckets


def rate_limit_middleware(settings: Settings) -> Middleware:
    buckets = KeyedBuckets(settings.api_rate_per_second, settings.api_rate_burst)
    limit = str(int(settings.api_rate_burst))

    @web.middleware
    async def throttle(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(API_ROOT):
            return await handler(request)
        token = next((request.headers[h] for h in TOKEN_HEADERS if request.headers.get(h)), None)
        named = token is not None and token.isascii()
        key = "token:" + hash_token(token) if named and token else "addr:" + (request.remote or "")
        decision = buckets.take(key, time.monotonic())
        headers = {
            "X-RateLimit-Limit": limit,
            "X-RateLimit-Remaining": str(decision.remaining),
            "X-RateLimit-Reset": str(math.ceil(decision.reset_after)),
        }
        if not decision.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(decision.retry_after)))
            return error_response(429, "Rate limit exceeded: slow down", headers)
        response = await handler(request)
        if not response.prepared:
            response.headers.update(headers)
        return response

    return throttle
