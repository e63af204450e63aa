"""How the gateway builds its call core from the process's components."""

from __future__ import annotations

from collections.abc import Callable

from trunkline.calls.call_media import CallMedia
from trunkline.calls.driver import CallCore, Spawn
from trunkline.calls.identity_signature import IdentitySigner
from trunkline.calls.incoming_webhook import IncomingCallWebhook
from trunkline.calls.live_call import LiveCall
from trunkline.calls.recording_publish import RecordingPublisher
from trunkline.media.factory import MediaSessionFactory
from trunkline.services import Services


def build_call_core(
    services: Services,
    sessions: MediaSessionFactory,
    *,
    spawn: Spawn,
    on_forget: Callable[[LiveCall], None],
) -> CallCore:
    """The call core over the process's repository, secrets, blobs, HTTP client and outbox."""
    settings = services.settings
    wake = services.outbox.wake if services.outbox is not None else _no_wake
    repository = services.repository
    signer = IdentitySigner(repository, services.secret_box)
    media = CallMedia(sessions, RecordingPublisher(repository, services.blob_store, wake))
    return CallCore(
        repository,
        signer,
        IncomingCallWebhook(repository, signer, services.http, settings),
        media,
        settings,
        wake_outbox=wake,
        spawn=spawn,
        on_forget=on_forget,
    )


def _no_wake() -> None:
    return None
