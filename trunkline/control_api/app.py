"""Builds the aiohttp application that serves every HTTP route of one process.

``build_app`` takes each component the handlers use as its own argument and
stores it under its own key (``keys.py``). Routes served by other layers (the
carrier media streams and Twilio voice webhook of the gateway) are mounted by
the composition root through ``mount``, so this package never imports them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aiohttp import web

from trunkline.calls.control import CallControlSlot, Draining
from trunkline.carriers.inventory import NumberInventory
from trunkline.config import Settings
from trunkline.control_api import carrier_texts, health, presigned_media, twilio_calls
from trunkline.control_api.api import ROUTES
from trunkline.control_api.errors import error_middleware
from trunkline.control_api.keys import (
    BLOB_STORE,
    CALL_CONTROL,
    CALL_LIMITS,
    DRAINING,
    INVENTORY,
    OUTBOX,
    REPOSITORY,
    SECRET_BOX,
    SETTINGS,
    SPEECH,
    TEXT_INGRESS,
    TEXT_SENDER,
)
from trunkline.control_api.openapi import add_document_route
from trunkline.control_api.route_table import add_routes
from trunkline.control_api.throttle import THROTTLE, ApiThrottle, rate_limit_middleware
from trunkline.control_api.usage import CallLimits
from trunkline.crypto import SecretBox
from trunkline.messaging.ingress import TextIngress
from trunkline.messaging.outbound import TextSender
from trunkline.outbox.worker import OutboxWorker
from trunkline.speech.preload import SpeechPreload
from trunkline.storage.blobs import BlobStore
from trunkline.storage.repository import Repository

__all__ = ["Mount", "build_app"]

CLIENT_MAX_SIZE_BYTES = 1024 * 1024

Mount = Callable[[web.Application], None]  # adds routes (and their app keys) to the app


def build_app(
    *,
    settings: Settings,
    repository: Repository,
    secret_box: SecretBox,
    blob_store: BlobStore,
    text_ingress: TextIngress,
    text_sender: TextSender,
    inventory: NumberInventory | None,
    outbox: OutboxWorker | None,
    call_control: CallControlSlot,
    draining: Draining,
    call_limits: CallLimits | None = None,
    speech: SpeechPreload | None = None,
    mount: Sequence[Mount] = (),
) -> web.Application:
    throttle = ApiThrottle.from_settings(settings)
    app = web.Application(
        client_max_size=CLIENT_MAX_SIZE_BYTES,
        middlewares=[error_middleware, rate_limit_middleware(throttle)],
    )
    app[SETTINGS] = settings
    app[REPOSITORY] = repository
    app[SECRET_BOX] = secret_box
    app[BLOB_STORE] = blob_store
    app[TEXT_INGRESS] = text_ingress
    app[TEXT_SENDER] = text_sender
    app[INVENTORY] = inventory
    app[OUTBOX] = outbox
    app[CALL_CONTROL] = call_control
    app[DRAINING] = draining
    app[CALL_LIMITS] = call_limits or CallLimits.from_settings(settings)
    app[THROTTLE] = throttle
    app[SPEECH] = speech
    health.add_routes(app)
    presigned_media.add_routes(app)
    carrier_texts.add_routes(app)
    twilio_calls.add_routes(app)  # Twilio's REST hang-up for Twilio-persona agents
    for add in mount:
        add(app)
    add_document_route(app, ROUTES)
    add_routes(app, ROUTES)
    return app
