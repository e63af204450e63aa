"""Every control-API failure is JSON ``{"detail": ...}`` with the right status.

Handlers raise ``ApiError``; aiohttp's own HTTP exceptions (unknown route 404,
wrong method 405, body over the size limit 413) are rewritten into the same
shape, and anything unexpected becomes a 500 whose body reveals nothing
(the traceback goes to the log). Routes outside the API (health, carrier
ingress, metrics) pass through untouched unless no route matched.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from trunkline.storage.fairness import DatabaseBusy

log = logging.getLogger("trunkline.api")

API_PREFIX = "/api/v1/phone"
API_ROOT = "/api/"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_REASONS: Mapping[int, str] = {
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Request body too large",
}


class ApiError(Exception):
    """An answer other than success: ``status`` and a JSON-able ``detail``."""

    def __init__(
        self, status: int, detail: Any, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})


def error_response(
    status: int, detail: Any, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response({"detail": detail}, status=status, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn failures of API routes (and unmatched paths anywhere) into JSON errors."""
    unmatched = request.match_info.http_exception is not None
    if not unmatched and not request.path.startswith(API_ROOT):
        return await handler(request)
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.detail, exc.headers)
    except DatabaseBusy:
        detail = "Database busy: too many requests of this organisation are queued; retry"
        return error_response(503, detail, {"Retry-After": "1"})
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return error_response(exc.status, _REASONS.get(exc.status, exc.reason), headers)
    except Exception:
        log.exception("unhandled error", extra={"method": request.method, "path": request.path})
        return error_response(500, "Internal Server Error")
