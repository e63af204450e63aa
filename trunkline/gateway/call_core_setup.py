"""How the gateway builds its call core from the components it was given."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp

from trunkline.calls.call_media import CallMedia
from trunkline.calls.driver import CallCore, Spawn
from trunkline.calls.identity_signature import IdentitySigner
from trunkline.calls.incoming_webhook import IncomingCallWebhook
from trunkline.calls.live_call import LiveCall
from trunkline.calls.recording_publish import RecordingPublisher
from trunkline.config import Settings
from trunkline.crypto import SecretBox
from trunkline.media.factory import MediaSessionFactory
from trunkline.storage.blobs import BlobStore
from trunkline.storage.stores import CallStore, IdentityStore


def build_call_core(
    settings: Settings,
    sessions: MediaSessionFactory,
    *,
    calls: CallStore,
    identities: IdentityStore,
    secret_box: SecretBox,
    blob_store: BlobStore,
    http: aiohttp.ClientSession,
    wake_outbox: Callable[[], None],
    spawn: Spawn,
    on_forget: Callable[[LiveCall], None],
) -> CallCore:
    """The call core over the call and identity stores, secrets, blobs, HTTP client and outbox."""
    signer = IdentitySigner(identities, secret_box)
    media = CallMedia(sessions, RecordingPublisher(calls, blob_store, wake_outbox))
    return CallCore(
        calls,
        signer,
        IncomingCallWebhook(identities, signer, http, settings),
        media,
        settings,
        wake_outbox=wake_outbox,
        spawn=spawn,
        on_forget=on_forget,
    )
