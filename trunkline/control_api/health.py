"""Unauthenticated, cheap liveness, readiness and metrics endpoints."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from trunkline.control_api.keys import CALL_CONTROL, DRAINING, REPOSITORY, SETTINGS


async def healthz(request: web.Request) -> web.Response:
    """The process is alive and its event loop answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready for new calls: not draining, database queue moving, storage answers, SIP
    bound, below capacity."""
    if request.app[DRAINING].active:
        return web.json_response({"status": "draining"}, status=503)
    repository = request.app[REPOSITORY]
    waited = repository.queue_wait_seconds()
    limit = request.app[SETTINGS].storage.stall_seconds
    if waited > limit:
        detail = f"database queue stalled: oldest job waiting {waited:.1f} s (limit {limit:g} s)"
        return web.json_response({"status": "database stalled", "detail": detail}, status=503)
    if not await repository.ping():
        return web.json_response({"status": "storage unavailable"}, status=503)
    control = request.app[CALL_CONTROL].current
    reason = control.readiness() if control is not None else None
    if reason is not None:
        return web.json_response({"status": reason}, status=503)
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(REGISTRY)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
