"""The one object the SIP/RTP gateway still reads the process through.

The gateway and the call code it drives (restart sweep, recording publication,
transcripts, carrier media streams) read ``settings``, ``repository``,
``master_key``, ``secret_box``, ``blob_store``, ``http``, ``outbox``,
``draining`` and ``call_control`` off one object. The daemon builds it from the
components it opened (``Runtime.gateway_services``); nothing else receives it.
It goes away once the gateway takes these as explicit constructor arguments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from trunkline.calls.control import CallControl, CallControlSlot, Draining
    from trunkline.config import Settings
    from trunkline.crypto import SecretBox
    from trunkline.outbox.worker import OutboxWorker
    from trunkline.storage.blobs import BlobStore
    from trunkline.storage.repository import Repository


class Services:
    """The process's components as the gateway reads them (see the module docstring)."""

    __slots__ = (
        "_call_control",
        "_draining",
        "blob_store",
        "http",
        "master_key",
        "outbox",
        "repository",
        "secret_box",
        "settings",
    )

    def __init__(
        self,
        *,
        settings: Settings,
        repository: Repository,
        master_key: bytes,
        secret_box: SecretBox,
        blob_store: BlobStore,
        http: aiohttp.ClientSession,
        outbox: OutboxWorker | None,
        draining: Draining,
        call_control: CallControlSlot,
    ) -> None:
        self.settings = settings
        self.repository = repository
        self.master_key = master_key
        self.secret_box = secret_box
        self.blob_store = blob_store
        self.http = http
        self.outbox = outbox
        self._draining = draining
        self._call_control = call_control

    @property
    def draining(self) -> bool:
        """The process has stopped taking new calls."""
        return self._draining.active

    @property
    def call_control(self) -> CallControl | None:
        return self._call_control.current


# Where the gateway's HTTP routes (carrier media streams, Twilio voice) find it.
SERVICES: web.AppKey[Services] = web.AppKey("services")
