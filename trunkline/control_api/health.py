"""Unauthenticated, cheap liveness, readiness and metrics endpoints."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from trunkline.control_api.keys import CALL_CONTROL, DRAINING, REPOSITORY, SETTINGS, SPEECH


async def healthz(request: web.Request) -> web.Response:
    """The process is alive and its event loop answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready for new calls: not draining, database queue moving, storage answers, SIP
    bound, below capacity (and, when so configured, the speech engines loaded).

    Every answer carries ``speech``: each preloaded engine's ``loading``, ``ready`` or
    ``failed``."""
    preload = request.app[SPEECH]
    speech = preload.states() if preload is not None else {}

    def answer(body: dict[str, str], status: int = 200) -> web.Response:
        return web.json_response({**body, "speech": speech}, status=status)

    if request.app[DRAINING].active:
        return answer({"status": "draining"}, 503)
    repository = request.app[REPOSITORY]
    settings = request.app[SETTINGS]
    waited = repository.queue_wait_seconds()
    limit = settings.storage.stall_seconds
    if waited > limit:
        detail = f"database queue stalled: oldest job waiting {waited:.1f} s (limit {limit:g} s)"
        return answer({"status": "database stalled", "detail": detail}, 503)
    if not await repository.ping():
        return answer({"status": "storage unavailable"}, 503)
    control = request.app[CALL_CONTROL].current
    reason = control.readiness() if control is not None else None
    if reason is not None:
        return answer({"status": reason}, 503)
    if settings.speech.ready_waits_for_speech:
        if "loading" in speech.values():
            return answer({"status": "speech loading"}, 503)
        if "failed" in speech.values():
            return answer({"status": "speech failed"}, 503)
    return answer({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(REGISTRY)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
