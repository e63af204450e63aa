"""Typed keys for the components the HTTP application hands its route handlers.

Each component has its own key, set once by ``build_app``; a handler reads
exactly what it uses (``request.app[REPOSITORY]``).
"""

from __future__ import annotations

from aiohttp import web

from trunkline.calls.control import CallControlSlot, Draining
from trunkline.carriers.inventory import NumberInventory
from trunkline.config import Settings
from trunkline.control_api.usage import CallLimits
from trunkline.crypto import SecretBox
from trunkline.messaging.ingress import TextIngress
from trunkline.messaging.outbound import TextSender
from trunkline.outbox.worker import OutboxWorker
from trunkline.speech.preload import SpeechPreload
from trunkline.storage.blobs import BlobStore
from trunkline.storage.repository import Repository

SETTINGS = web.AppKey("settings", Settings)
REPOSITORY = web.AppKey("repository", Repository)
SECRET_BOX = web.AppKey("secret_box", SecretBox)
BLOB_STORE = web.AppKey("blob_store", BlobStore)
TEXT_INGRESS = web.AppKey("text_ingress", TextIngress)
TEXT_SENDER: web.AppKey[TextSender] = web.AppKey("text_sender")
OUTBOX: web.AppKey[OutboxWorker | None] = web.AppKey("outbox")  # None: no delivery worker
INVENTORY: web.AppKey[NumberInventory | None] = web.AppKey("inventory")  # None: cannot provision
CALL_CONTROL = web.AppKey("call_control", CallControlSlot)
CALL_LIMITS = web.AppKey("call_limits", CallLimits)
DRAINING = web.AppKey("draining", Draining)
SPEECH: web.AppKey[SpeechPreload | None] = web.AppKey("speech")  # None: not preloaded here
