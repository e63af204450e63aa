"""Builds the aiohttp application that serves every HTTP route of one process."""

from __future__ import annotations

from aiohttp import web

from trunkline.control_api import carrier_texts, health, media
from trunkline.control_api.api import ROUTES
from trunkline.control_api.errors import error_middleware
from trunkline.control_api.keys import SERVICES
from trunkline.control_api.openapi import add_document_route
from trunkline.control_api.route_table import add_routes
from trunkline.control_api.throttle import THROTTLE, ApiThrottle, rate_limit_middleware
from trunkline.gateway import carrier_streams, twilio_voice
from trunkline.services import Services

__all__ = ["SERVICES", "build_app"]

CLIENT_MAX_SIZE_BYTES = 1024 * 1024


def build_app(services: Services) -> web.Application:
    throttle = ApiThrottle.from_settings(services.settings)
    app = web.Application(
        client_max_size=CLIENT_MAX_SIZE_BYTES,
        middlewares=[error_middleware, rate_limit_middleware(throttle)],
    )
    app[SERVICES] = services
    app[THROTTLE] = throttle
    health.add_routes(app)
    media.add_routes(app)
    carrier_texts.add_routes(app)
    carrier_streams.add_routes(app)
    twilio_voice.add_routes(app)
    add_document_route(app, ROUTES)
    add_routes(app, ROUTES)
    return app
