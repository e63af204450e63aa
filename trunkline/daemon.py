"""Runs one trunkline process: services, HTTP listener, signal-driven shutdown.

Start-up makes the data directory private, then ends the calls this process's
slot left live when its last run died (``restart_sweep``) before it takes any.
Shutdown is phased: stop accepting, let live work finish within the deadline,
then release resources in reverse order of opening. A second SIGINT/SIGTERM
shortens the deadline to zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Awaitable, Callable

from aiohttp import web

from trunkline.calls.owner_channel import OwnerChannel, claim_owner, owner_id
from trunkline.calls.owner_notify import PgCallActions
from trunkline.calls.recording_publish import RecordingPublisher
from trunkline.calls.restart_sweep import end_calls_left_live
from trunkline.config import Settings
from trunkline.control_api import build_app
from trunkline.data_dir import load_node_id, secure_data_dir
from trunkline.gateway.clock import MediaClock
from trunkline.gateway.rtp.transport import RtpPortAllocator
from trunkline.gateway.sip_gateway import GatewayCallControl, SipGateway
from trunkline.services import Services

log = logging.getLogger("trunkline.daemon")
OUTBOX_FLUSH_SECONDS = 10.0
OUTBOX_STOP_SECONDS = 1.0  # a delivery in flight finishes or is retried after restart


class ShutdownSignal:
    """Counts termination signals; the first asks for a drain, the second for haste."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self.hurried = asyncio.Event()

    def trigger(self, signum: int) -> None:
        if self.requested.is_set():
            log.warning("second signal %s: shutting down without waiting", signum)
            self.hurried.set()
        else:
            log.info("signal %s: shutting down", signum)
            self.requested.set()

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.trigger, signum)


async def serve(
    settings: Settings,
    on_ready: Callable[[Services, int], None] | None = None,
    shutdown: ShutdownSignal | None = None,
) -> None:
    """Serve until a shutdown signal; ``on_ready`` gets the bound HTTP port."""
    shutdown = shutdown or ShutdownSignal()
    if sys.platform != "win32":
        shutdown.install(asyncio.get_running_loop())
    secure_data_dir(settings.data_dir)
    services = await Services.open(settings)
    outbox_task: asyncio.Task[None] | None = None
    gateway: SipGateway | None = None
    channel: OwnerChannel | None = None
    actions: PgCallActions | None = None
    runner = web.AppRunner(
        build_app(services), handle_signals=False, access_log=None, shutdown_timeout=1.0
    )
    try:
        owner = claim_owner(load_node_id(settings.data_dir), settings.worker_slot)
        wake = services.outbox.wake if services.outbox is not None else _no_wake
        publisher = RecordingPublisher(services.repository, services.blob_store, wake)
        recordings = settings.data_dir / "recordings"
        # Before this process takes any call.
        await end_calls_left_live(services.repository, publisher, recordings, owner)
        await runner.setup()
        shared = settings.worker_of > 0  # one of serve --workers N: share the ports
        site = web.TCPSite(runner, settings.host, settings.http_port, reuse_port=shared or None)
        await site.start()
        port = _bound_port(runner, settings.http_port)
        gateway = await _start_gateway(services)
        if shared:
            channel = OwnerChannel(
                settings.data_dir / "run", settings.worker_slot, _hangup_here(gateway)
            )
            await channel.start()
        if settings.effective_database_url.startswith(("postgresql://", "postgres://")):
            # Processes on other machines share this database: hang-ups reach owners here.
            actions = PgCallActions(
                settings.effective_database_url, owner_id(), _hangup_here(gateway)
            )
            await actions.start()
            assert isinstance(services.call_control, GatewayCallControl)
            services.call_control.remote_owners = actions
        log.info(
            "serving",
            extra={
                "http": f"{settings.host}:{port}",
                "sip": f"{gateway.local_address[0]}:{gateway.local_address[1]}",
            },
        )
        if services.outbox is not None:
            outbox_task = asyncio.create_task(services.outbox.run(), name="outbox")
        if on_ready is not None:
            on_ready(services, port)
        await shutdown.requested.wait()
        services.draining = True
        if gateway is not None:
            await _drain(gateway, settings.shutdown_timeout_seconds, shutdown.hurried)
    finally:
        if channel is not None:
            await channel.close()
        if actions is not None:
            await actions.close()
        if gateway is not None:
            await gateway.close()
        if services.outbox is not None and outbox_task is not None:
            services.outbox.stop()
            await _finish(outbox_task, OUTBOX_STOP_SECONDS)
            # The calls just ended wrote call.ended and recording.ready: send them now.
            await services.outbox.flush(OUTBOX_FLUSH_SECONDS)
        await runner.cleanup()
        await services.close()
        log.info("stopped")


async def _drain(gateway: SipGateway, deadline_seconds: float, hurried: asyncio.Event) -> None:
    """Let live calls end by themselves until the deadline or a second signal."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_seconds
    if gateway.calls:
        log.info(
            "draining: waiting up to %.0f s for %d calls", deadline_seconds, len(gateway.calls)
        )
    while gateway.busy and not hurried.is_set() and loop.time() < deadline:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hurried.wait(), min(0.1, max(0.0, deadline - loop.time())))
    if gateway.calls:
        log.info("drain deadline: ending %d calls", len(gateway.calls))


def _no_wake() -> None:
    return None


def _hangup_here(gateway: SipGateway) -> Callable[[str], Awaitable[bool]]:
    async def hangup(call_id: str) -> bool:
        return await gateway.hangup(call_id)

    return hangup


async def _start_gateway(services: Services) -> SipGateway:
    """Bind SIP and the RTP range; the gateway answers calls and the API reaches it."""
    settings = services.settings
    gateway = SipGateway(
        services,
        MediaClock(),
        RtpPortAllocator(settings.sip_host, settings.rtp_port_min, settings.rtp_port_max),
        media_address(settings),
    )
    await gateway.start(settings.sip_host, settings.sip_port, shared=settings.worker_of > 0)
    services.call_control = GatewayCallControl(gateway)
    services.sip_address = gateway.local_address
    return gateway


def media_address(settings: Settings) -> str:
    """The address written into SDP: configured, the SIP host, or the outbound interface's."""
    if settings.media_address:
        return settings.media_address
    if settings.sip_host not in ("0.0.0.0", "::", ""):
        return settings.sip_host
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


async def _finish(task: asyncio.Task[None], grace_seconds: float) -> None:
    """Let a background task end by itself within ``grace_seconds``, else cancel it."""
    try:
        await asyncio.wait_for(asyncio.shield(task), grace_seconds)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _bound_port(runner: web.AppRunner, requested: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return requested


def install_event_loop_policy() -> None:
    """Use uvloop where it is available; it carries the media path much faster."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows or a stripped install
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run(settings: Settings) -> int:
    install_event_loop_policy()
    asyncio.run(serve(settings))
    return 0
