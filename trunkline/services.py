"""The process-wide objects one daemon process shares, opened and closed in order.

``Services.open`` creates them in dependency order and ``close`` releases them in
reverse. Route handlers reach them through ``request.app[SERVICES]``.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from trunkline.config import Settings
from trunkline.crypto import SecretBox, UrlSigner, load_master_key
from trunkline.data_dir import private_directory
from trunkline.storage.blobs import BlobStore, LocalBlobStore, S3BlobStore

if TYPE_CHECKING:
    import aiohttp

    from trunkline.carriers.inventory import NumberInventory
    from trunkline.control_api.usage import CallLimits
    from trunkline.messaging.ingress import TextIngress
    from trunkline.messaging.outbound import TextSender
    from trunkline.outbox.worker import OutboxWorker
    from trunkline.storage.models import Call, PhoneNumber
    from trunkline.storage.repository import Repository


class DialError(Exception):
    """The carrier could not be asked to place the call (API answers 502)."""


class CallCapacityError(DialError):
    """The organisation already has its maximum of concurrent calls (API answers 429)."""


class CallControl(Protocol):
    """What the control API asks of the live call machinery (the SIP/RTP gateway)."""

    async def place_call(self, call: Call, number: PhoneNumber) -> None:
        """Start dialling a stored outbound call; raises DialError when it cannot."""

    async def hangup(self, call: Call) -> bool:
        """End a live call (BYE, or CANCEL before answer); False when this process has no such call."""

    def readiness(self) -> str | None:
        """Why new calls cannot be taken right now (None: ready)."""

    @property
    def owner(self) -> str:
        """The owner name of calls this process carries (its restart sweep ends them)."""


log = logging.getLogger("trunkline.services")


@dataclass(slots=True)
class Services:
    settings: Settings
    draining: bool = False
    call_control: CallControl | None = None
    inventory: NumberInventory | None = None  # where POST /numbers gets numbers
    call_limits: CallLimits | None = None  # place-call budget; None: the defaults
    outbox: OutboxWorker | None = None  # delivers webhook events; started by the daemon
    sip_address: tuple[str, int] | None = None  # where the SIP gateway listens, once bound
    _repository: Repository | None = None
    _master_key: bytes | None = None
    _secret_box: SecretBox | None = None
    _blob_store: BlobStore | None = None
    _http: aiohttp.ClientSession | None = None
    _text_ingress: TextIngress | None = None
    _text_sender: TextSender | None = None
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack)

    @property
    def repository(self) -> Repository:
        if self._repository is None:
            raise RuntimeError("storage is not open")
        return self._repository

    @repository.setter
    def repository(self, repository: Repository) -> None:
        self._repository = repository

    @property
    def master_key(self) -> bytes:
        """The key behind stored-secret encryption and presigned URLs (loaded once)."""
        if self._master_key is None:
            self._master_key = load_master_key(self.settings.secret_key, self.settings.data_dir)
        return self._master_key

    @property
    def secret_box(self) -> SecretBox:
        if self._secret_box is None:
            self._secret_box = SecretBox(self.master_key)
        return self._secret_box

    @property
    def blob_store(self) -> BlobStore:
        if self._blob_store is None:
            settings = self.settings
            store: BlobStore
            if settings.s3_bucket:
                store = S3BlobStore(
                    settings.s3_bucket,
                    endpoint_url=settings.s3_endpoint_url,
                    region=settings.s3_region,
                    access_key_id=settings.s3_access_key_id,
                    secret_access_key=settings.s3_secret_access_key,
                )
            else:
                store = LocalBlobStore(
                    settings.data_dir / "blobs",
                    UrlSigner(self.master_key),
                    settings.effective_public_url,
                )
            self._stack.push_async_callback(store.close)
            self._blob_store = store
        return self._blob_store

    @classmethod
    async def open(cls, settings: Settings) -> Services:
        private_directory(settings.data_dir)
        services = cls(settings=settings)
        try:
            await services._open_parts()
        except BaseException:
            await services.close()
            raise
        return services

    async def _open_parts(self) -> None:
        """Open storage and the other shared parts; each registers its own close."""
        from trunkline.carriers.inventory import open_inventory
        from trunkline.storage import open_repository

        _ = self.master_key  # create the data-dir key before anything needs it
        repository = await open_repository(self.settings.effective_database_url)
        self._stack.push_async_callback(repository.close)
        repository.limit_queues(
            per_tenant=self.settings.database_queue_per_org,
            sheddable_per_tenant=self.settings.database_sheddable_per_org,
        )
        self.repository = repository
        inventory = open_inventory(self.settings, repository.active_numbers_in_use)
        self._stack.push_async_callback(inventory.close)
        self.inventory = inventory
        self.outbox = await self._open_outbox(repository)

    @property
    def http(self) -> aiohttp.ClientSession:
        """The shared outbound HTTP client; every name it resolves passes the SSRF guard."""
        if self._http is None:
            import aiohttp

            from trunkline.webhooks.ssrf import connector_options

            options = connector_options(self.settings.allow_private_targets)
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64, **options), auto_decompress=False
            )
            self._stack.push_async_callback(self._http.close)
        return self._http

    @property
    def text_ingress(self) -> TextIngress:
        if self._text_ingress is None:
            from trunkline.messaging.ingress import TextIngress
            from trunkline.messaging.media import MediaFetcher

            fetcher = MediaFetcher(self.http, allow_private=self.settings.allow_private_targets)
            self._text_ingress = TextIngress(self.repository, self.blob_store, fetcher.fetch)
        return self._text_ingress

    @property
    def text_sender(self) -> TextSender:
        if self._text_sender is None:
            from trunkline.messaging.outbound import LocalTextSender, TelnyxMessagingClient

            settings = self.settings
            if settings.telnyx_api_key:
                self._text_sender = TelnyxMessagingClient(
                    settings.telnyx_api_url, settings.telnyx_api_key, self.http
                )
            else:
                self._text_sender = LocalTextSender(
                    self.text_ingress, self.repository.find_active_number
                )
        return self._text_sender

    @text_sender.setter
    def text_sender(self, sender: TextSender) -> None:
        self._text_sender = sender

    async def _open_outbox(self, repository: Repository) -> OutboxWorker:
        from trunkline.outbox.signer import IdentitySigner
        from trunkline.outbox.worker import OutboxWorker

        return OutboxWorker(
            repository,
            self.http,
            signer=IdentitySigner(repository, self.secret_box),
            secret_box=self.secret_box,
            allow_private=self.settings.allow_private_targets,
        )

    async def close(self) -> None:
        await self._stack.aclose()
