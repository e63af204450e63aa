"""The composition root's components: what one daemon process opens before it serves.

``open_runtime`` opens them in dependency order (data-directory key, storage,
number inventory, outbound HTTP client, webhook outbox, blob store, text
ingress and sender) and closes them in reverse when its block ends. Each
component is then handed, explicitly, to whoever uses it; the ``Runtime``
itself is only held by the daemon (and given to its ``on_ready`` observer).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import aiohttp

from trunkline.calls.control import CallControlSlot, Draining
from trunkline.carriers.configured import open_inventory
from trunkline.carriers.inventory import NumberInventory
from trunkline.config import Settings
from trunkline.crypto import SecretBox, UrlSigner, load_master_key
from trunkline.data_dir import private_directory
from trunkline.messaging.ingress import TextIngress
from trunkline.messaging.mms_fetch import MediaFetcher
from trunkline.messaging.outbound import LocalTextSender, TelnyxMessagingClient, TextSender
from trunkline.outbox.signer import IdentitySigner
from trunkline.outbox.worker import OutboxWorker
from trunkline.storage import open_repository
from trunkline.storage.blobs import BlobStore, LocalBlobStore, S3BlobStore
from trunkline.storage.repository import Repository
from trunkline.webhooks.ssrf import connector_options


@dataclass(slots=True)
class Runtime:
    """Every shared component of one process, and where its live state is read."""

    settings: Settings
    master_key: bytes  # behind stored-secret encryption and presigned URLs
    secret_box: SecretBox
    repository: Repository
    inventory: NumberInventory  # where POST /numbers gets numbers
    http: aiohttp.ClientSession  # every name it resolves passes the SSRF guard
    outbox: OutboxWorker  # delivers webhook events; run by the daemon
    blob_store: BlobStore
    text_ingress: TextIngress
    text_sender: TextSender
    draining: Draining = field(default_factory=Draining)
    call_control: CallControlSlot = field(default_factory=CallControlSlot)
    sip_address: tuple[str, int] | None = None  # where the SIP gateway listens, once bound


@asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """Open the process's components; they close in reverse order when the block ends."""
    private_directory(settings.data_dir)
    master_key = load_master_key(settings.secret_key, settings.data_dir)
    secret_box = SecretBox(master_key)
    async with AsyncExitStack() as stack:
        repository = await open_repository(settings.database_url)
        stack.push_async_callback(repository.close)
        repository.limit_queues(
            per_tenant=settings.storage.queue_per_org,
            sheddable_per_tenant=settings.storage.sheddable_per_org,
        )
        inventory = open_inventory(settings, repository.active_numbers_in_use)
        stack.push_async_callback(inventory.close)
        http = open_http_client(settings)
        stack.push_async_callback(http.close)
        outbox = OutboxWorker(
            repository,
            http,
            signer=IdentitySigner(repository, secret_box),
            secret_box=secret_box,
            allow_private=settings.allow_private_targets,
            lease_seconds=settings.storage.webhook_lease_seconds,
            timeout_seconds=settings.storage.webhook_timeout_seconds,
        )
        blob_store = open_blob_store(settings, master_key)
        stack.push_async_callback(blob_store.close)
        fetcher = MediaFetcher(http, allow_private=settings.allow_private_targets)
        text_ingress = TextIngress(repository, blob_store, fetcher.fetch)
        yield Runtime(
            settings=settings,
            master_key=master_key,
            secret_box=secret_box,
            repository=repository,
            inventory=inventory,
            http=http,
            outbox=outbox,
            blob_store=blob_store,
            text_ingress=text_ingress,
            text_sender=text_sender(settings, http, text_ingress, repository),
        )


def open_http_client(settings: Settings) -> aiohttp.ClientSession:
    """The shared outbound HTTP client; every name it resolves passes the SSRF guard."""
    options = connector_options(settings.allow_private_targets)
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=64, **options), auto_decompress=False
    )


def open_blob_store(settings: Settings, master_key: bytes) -> BlobStore:
    """S3 when a bucket is configured, else files under the data directory."""
    if settings.storage.s3_bucket:
        return S3BlobStore(
            settings.storage.s3_bucket,
            endpoint_url=settings.storage.s3_endpoint_url,
            region=settings.storage.s3_region,
            access_key_id=settings.storage.s3_access_key_id,
            secret_access_key=settings.storage.s3_secret_access_key,
        )
    return LocalBlobStore(
        settings.data_dir / "blobs", UrlSigner(master_key), settings.api.effective_public_url
    )


def text_sender(
    settings: Settings, http: aiohttp.ClientSession, ingress: TextIngress, repository: Repository
) -> TextSender:
    """Telnyx's messaging API when a Telnyx key is set; else delivery between local numbers."""
    if settings.carriers.telnyx_api_key:
        return TelnyxMessagingClient(
            settings.carriers.telnyx_api_url, settings.carriers.telnyx_api_key, http
        )
    return LocalTextSender(ingress, repository.find_active_number)
