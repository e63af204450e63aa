"""The delivery worker: leases due deliveries from the database and POSTs them.

One worker task per process. Each round claims a batch (leased under this
worker's name, so a crash leaves them to be retried after the lease; a delivery
is sent only while the request fits in its lease, and its outcome is recorded
only while the lease is still this worker's), sends them with bounded total
concurrency and a bounded number in flight per destination host, and writes
each attempt and its outcome in one transaction. Redirects are never
followed; each request times out after its timeout (TRUNKLINE_WEBHOOK_TIMEOUT_SECONDS).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import secrets
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import aiohttp

from trunkline import metrics
from trunkline.crypto import InvalidSecret, SecretBox
from trunkline.outbox.schedule import decide
from trunkline.storage.models import DueDelivery, EventDraft, WebhookAttempt, new_id, utcnow
from trunkline.storage.stores import WebhookStore
from trunkline.webhooks.ssrf import UnsafeTarget, check_url_literal

log = logging.getLogger("trunkline.outbox")

REQUEST_TIMEOUT_SECONDS = 15.0
RESPONSE_BODY_LOG_BYTES = 2048
USER_AGENT = "trunkline-webhooks/1"

# Signature headers for one request body, or None when the subscription's owner has no key.
Signer = Callable[[DueDelivery, bytes, int], Awaitable[Mapping[str, str] | None]]
Clock = Callable[[], datetime]


def envelope(event: EventDraft) -> bytes:
    """The body every subscriber receives; ``id`` is stable across retries."""
    document = {
        "id": event.id,
        "event_type": event.event_type,
        "timestamp": event.created_at.isoformat(),
        "data": event.data,
    }
    return json.dumps(document, separators=(",", ":"), default=str).encode()


@dataclass(slots=True)
class WorkerStats:
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    disabled: int = 0


class _DestinationLimits:
    """A semaphore per destination host, for a bounded number of hosts (least recent evicted)."""

    def __init__(self, per_destination: int, max_destinations: int = 1024) -> None:
        self._per_destination = per_destination
        self._max = max_destinations
        self._semaphores: OrderedDict[str, asyncio.Semaphore] = OrderedDict()

    def for_url(self, url: str) -> asyncio.Semaphore:
        host = (urlsplit(url).hostname or "").lower()
        semaphore = self._semaphores.get(host)
        if semaphore is None:
            if len(self._semaphores) >= self._max:
                idle = next(
                    (k for k, s in self._semaphores.items() if not s.locked()),
                    None,
                )
                if idle is not None:
                    del self._semaphores[idle]
            semaphore = asyncio.Semaphore(self._per_destination)
            self._semaphores[host] = semaphore
        else:
            self._semaphores.move_to_end(host)
        return semaphore


class OutboxWorker:
    def __init__(
        self,
        webhooks: WebhookStore,
        session: aiohttp.ClientSession,
        *,
        signer: Signer,
        secret_box: SecretBox,
        allow_private: bool = False,
        clock: Clock = utcnow,
        rng: random.Random | None = None,
        batch_size: int = 64,
        lease_seconds: float = 60.0,
        max_in_flight: int = 32,
        per_destination: int = 4,
        poll_interval: float = 1.0,
        timeout_seconds: float = REQUEST_TIMEOUT_SECONDS,
        lessee: str | None = None,
    ) -> None:
        if timeout_seconds >= lease_seconds:
            raise ValueError("a delivery's request must fit in its lease")
        self._webhooks = webhooks
        self._session = session
        self._signer = signer
        self._secret_box = secret_box
        self._allow_private = allow_private
        self._clock = clock
        self._rng = rng or random.Random()
        self._batch_size = batch_size
        self._lease_seconds = lease_seconds
        # Who holds this worker's leases: unique across processes and machines.
        self.lessee = lessee or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._destinations = _DestinationLimits(per_destination)
        self._poll_interval = poll_interval
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._wake = asyncio.Event()
        self._stopping = False
        self._disabled: set[str] = set()  # subscriptions disabled during the current round
        self.stats = WorkerStats()

    def wake(self) -> None:
        """New events were written: look for due deliveries now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver until ``stop``; a failing round is logged and retried at the next poll."""
        while not self._stopping:
            try:
                handled = await self.run_once()
            except Exception:
                log.exception("outbox round failed")
                handled = 0
            if handled == 0 and not self._stopping:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_interval)

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def flush(self, seconds: float) -> int:
        """At shutdown: deliver what is due now, round after round, for at most ``seconds``.

        Deliveries that fail are rescheduled as usual (the durable outbox
        delivers them after the restart); returns how many were attempted.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        attempted = 0
        while (remaining := deadline - loop.time()) > 0:
            try:
                handled = await asyncio.wait_for(self.run_once(), remaining)
            except TimeoutError:
                log.warning("outbox flush cut short after %.0f s", seconds)
                break
            except Exception:
                log.exception("outbox flush failed; what is owed is delivered after restart")
                break
            if handled == 0:
                break
            attempted += handled
        return attempted

    async def release_leases(self) -> int:
        """At shutdown, once nothing is in flight: other processes may claim what this one held."""
        released = await self._webhooks.release_leases(self.lessee)
        if released:
            log.info("handed back %d leased webhook deliveries", released)
        return released

    async def run_once(self) -> int:
        """Claim what is due now and deliver it; returns how many deliveries were attempted."""
        due = await self._webhooks.claim_due_deliveries(
            self._clock(), self._batch_size, self._lease_seconds, lessee=self.lessee
        )
        self._disabled.clear()
        if due:
            await asyncio.gather(*(self._deliver_bounded(d) for d in due))
        return len(due)

    async def _deliver_bounded(self, delivery: DueDelivery) -> None:
        async with self._in_flight, self._destinations.for_url(delivery.subscription.url):
            if delivery.subscription.id in self._disabled:
                return  # disabled mid-round: its claimed deliveries were already failed
            await self.deliver(delivery)

    def _lease_covers_request(self, delivery: DueDelivery) -> bool:
        """True when a request started now ends (or times out) before the lease does.

        Another worker may claim the delivery once the lease expires; sending only
        while the whole request fits in the lease means two workers never send one
        delivery at the same time.
        """
        if delivery.leased_until is None:
            return True
        timeout = self._timeout.total or 0.0
        return self._clock() + timedelta(seconds=timeout) < delivery.leased_until

    async def deliver(self, delivery: DueDelivery) -> None:
        body = envelope(delivery.event)
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        signature = await self._signer(delivery, body, int(self._clock().timestamp()))
        if signature:
            headers.update(signature)
        token = self._bearer_token(delivery)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if not self._lease_covers_request(delivery):  # checked last, just before sending
            metrics.WEBHOOK_LEASES_LOST.labels("before_send").inc()
            log.warning(
                "webhook delivery's lease ran out before it was sent; left for the next claim",
                extra={"event_id": delivery.event.id, "subscription_id": delivery.subscription.id},
            )
            return
        status: int | None = None
        retry_after: str | None = None
        response_body: str | None = None
        error: str | None = None
        started = time.perf_counter()
        try:
            check_url_literal(delivery.subscription.url, allow_private=self._allow_private)
            async with self._session.post(
                delivery.subscription.url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=self._timeout,
            ) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
                raw = await response.content.read(RESPONSE_BODY_LOG_BYTES)
                response_body = raw.decode("utf-8", errors="replace")
        except UnsafeTarget as exc:
            error = f"refused: {exc}"
        except TimeoutError:
            error = f"timed out after {self._timeout.total:g} s"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        except OSError as exc:  # includes addresses refused by the guarded resolver
            error = f"{type(exc).__name__}: {exc}"[:500]
        elapsed = time.perf_counter() - started
        duration_ms = int(elapsed * 1000)
        metrics.WEBHOOK_SECONDS.observe(elapsed)
        now = self._clock()
        outcome = decide(delivery.attempts, status, retry_after, now, self._rng)
        attempt = WebhookAttempt(
            id=new_id(),
            organization_id=delivery.subscription.organization_id,
            subscription_id=delivery.subscription.id,
            phone_number_id=delivery.event.phone_number_id,
            event_id=delivery.event.id,
            event_type=delivery.event.event_type,
            url=delivery.subscription.url,
            request_payload=body.decode(),
            response_status=status,
            response_body=response_body,
            error_detail=error,
            duration_ms=duration_ms,
            is_replay=False,
            created_at=now,
        )
        ours = await self._webhooks.finish_delivery(
            delivery.id,
            attempt,
            state=outcome.state,
            next_attempt_at=outcome.next_attempt_at,
            disable_subscription=outcome.disable_reason,
            lessee=self.lessee,
        )
        if not ours:
            metrics.WEBHOOK_LEASES_LOST.labels("after_send").inc()
            log.warning(
                "webhook delivery's lease was taken over while it was sent",
                extra={"event_id": delivery.event.id, "subscription_id": delivery.subscription.id},
            )
            return
        if outcome.disable_reason is not None:
            self._disabled.add(delivery.subscription.id)
        self._count(outcome.state, outcome.disable_reason)
        log.info(
            "webhook delivery",
            extra={
                "event_id": delivery.event.id,
                "subscription_id": delivery.subscription.id,
                "status": status,
                "outcome": outcome.state,
            },
        )

    def _count(self, state: str, disabled: str | None) -> None:
        metrics.WEBHOOK_DELIVERIES.labels(
            {"delivered": "delivered", "pending": "retry"}.get(state, "failed")
        ).inc()
        if state == "delivered":
            self.stats.delivered += 1
        elif state == "pending":
            self.stats.retried += 1
        else:
            self.stats.failed += 1
        if disabled:
            self.stats.disabled += 1

    def _bearer_token(self, delivery: DueDelivery) -> str | None:
        sealed = delivery.subscription.auth_token_encrypted
        if sealed is None:
            return None
        try:
            return self._secret_box.decrypt(sealed)
        except InvalidSecret:
            log.error("cannot open a subscription's bearer token: wrong TRUNKLINE_SECRET_KEY?")
            return None
