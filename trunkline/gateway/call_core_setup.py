"""How the gateway builds its call core from the process's components."""

from __future__ import annotations

from collections.abc import Callable

from trunkline.calls.call_media import CallMediaFactory
from trunkline.calls.driver import CallCore, Spawn
from trunkline.calls.identity_signature import IdentitySigner
from trunkline.calls.incoming_webhook import IncomingCallWebhook
from trunkline.calls.live_call import LiveCall
from trunkline.calls.recording_publish import RecordingPublisher
from trunkline.gateway.clock import MediaClock
from trunkline.gateway.probes import MediaTotals
from trunkline.gateway.recording import RecordingWriter
from trunkline.services import Services
from trunkline.speech.engines import SpeechEngines


def build_call_core(
    services: Services,
    clock: MediaClock,
    recordings: RecordingWriter,
    speech: SpeechEngines,
    totals: MediaTotals,
    *,
    spawn: Spawn,
    on_forget: Callable[[LiveCall], None],
) -> CallCore:
    """The call core over the process's repository, secrets, blobs, HTTP client and outbox."""
    settings = services.settings
    wake = services.outbox.wake if services.outbox is not None else _no_wake
    repository = services.repository
    signer = IdentitySigner(repository, services.secret_box)
    publisher = RecordingPublisher(repository, services.blob_store, wake)
    media = CallMediaFactory(
        clock, recordings, speech, totals, publisher,
        max_playout_seconds=settings.playout_max_seconds,
    )  # fmt: skip
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
