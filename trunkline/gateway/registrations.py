"""Keeps a SIP registration alive for every number whose provider config asks for one.

A number with ``provider_config.register: true`` is reached through a binding
at its registrar (``registrar``, default the trunk address): the address of
record is its SIP username (else the number) at the registrar, the Contact is
``sip:<number>@<our SIP address>``, so the INVITE the registrar forwards names
the number in its Request-URI and is routed like any other.

``Registrations`` re-reads those numbers every ``TRUNKLINE_SIP_REGISTER_SYNC_SECONDS``
(a change made through the API on any process is picked up), starts a
``sip.registration.Registration`` for each new one, sends what it builds
through the endpoint's client transactions, arms one timer per binding for its
refresh or retry, writes each change of state to the number (what the API
shows) and to the metrics, and sends the ``Expires: 0`` REGISTER for numbers
that stop registering and for every binding at shutdown. In a process of
``serve --workers N`` only worker 0 registers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from trunkline import metrics
from trunkline.config import Settings
from trunkline.crypto import InvalidSecret, SecretBox
from trunkline.gateway.sip.application import SipAddress
from trunkline.gateway.sip.message import SipRequest, SipResponse, split_host_port
from trunkline.gateway.sip.parse_error import SipParseError
from trunkline.gateway.sip.registration import (
    Backoff,
    Outcome,
    Registered,
    Registration,
    RegistrationFailed,
    Send,
    Unregistered,
)
from trunkline.gateway.sip.uac import Credentials
from trunkline.storage.models import PhoneNumber
from trunkline.storage.stores import NumberStore

log = logging.getLogger("trunkline.sip.register")
UNREGISTER_WAIT_SECONDS = 5.0  # at shutdown, how long the Expires: 0 answers are awaited
GAUGE_STATES = ("pending", "registered", "failed")


class RegistrarHost(Protocol):
    """What registrations use of the SIP gateway."""

    @property
    def advertised_address(self) -> SipAddress: ...

    @property
    def outbound_address(self) -> SipAddress: ...

    def send_request(
        self,
        request: SipRequest,
        destination: SipAddress,
        on_response: Callable[[SipResponse], None] = ...,
        on_timeout: Callable[[], None] = ...,
        *,
        own_port: bool = False,
    ) -> None: ...


BindingKey = tuple[str, str, str | None, str | None]  # registrar, number, user, sealed password


@dataclass(eq=False)
class Binding:
    """One number's registration and where its REGISTERs go."""

    number_id: str
    key: BindingKey
    registration: Registration
    registrar_host: str
    registrar_port: int
    destination: SipAddress | None = None
    timer: asyncio.TimerHandle | None = None
    retired: bool = False  # unregistering: its outcomes are no longer stored


def binding_key(number: PhoneNumber) -> BindingKey | None:
    registrar = number.registrar or number.trunk_address
    if not registrar:
        return None
    return (registrar, number.number, number.auth_username, number.auth_password_encrypted)


class Registrations:
    """The registrations of one process (worker 0 of ``serve --workers``)."""

    def __init__(
        self,
        host: RegistrarHost,
        settings: Settings,
        *,
        numbers: NumberStore,
        secret_box: SecretBox,
    ) -> None:
        self._host = host
        self._numbers = numbers
        self._secret_box = secret_box
        sip = settings.sip
        self._expires = sip.register_expires_seconds
        self._backoff = Backoff(sip.register_retry_min_seconds, sip.register_retry_max_seconds)
        self._sync_seconds = sip.register_sync_seconds
        self.bindings: dict[str, Binding] = {}  # by number id
        self._leaving: set[Binding] = set()  # unregistering, until answered
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()  # status writes and timed REGISTERs
        self._left = asyncio.Event()
        self._conflicts: dict[str, str] = {}  # numbers refused for a shared address of record

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sip registrations")

    async def _run(self) -> None:
        while True:
            try:
                await self.sync()
            except Exception:  # a database hiccup must not end registration for good
                log.exception("could not read the numbers to register")
            await asyncio.sleep(self._sync_seconds)

    async def close(self) -> None:
        """Stop refreshing and remove every binding (``Expires: 0``), waiting a little."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for binding in list(self.bindings.values()):
            self._retire(binding)
        self.bindings.clear()
        self._conflicts = {}
        if self._leaving:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._left.wait(), UNREGISTER_WAIT_SECONDS)
        for binding in self._leaving:
            self._cancel_timer(binding)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._update_gauge()

    # -- which numbers register ----------------------------------------------------------
    async def sync(self) -> None:
        """Start registrations for new numbers, end those of numbers that stopped."""
        wanted: dict[str, tuple[PhoneNumber, BindingKey]] = {}
        holders: dict[tuple[str, str], str] = {}  # address of record: the number that has it
        conflicts: dict[str, str] = {}
        for number in await self._numbers.numbers_to_register():  # oldest first
            key = binding_key(number)
            if key is None:
                continue
            aor = (key[0].lower(), number.auth_username or number.number)
            holder = holders.setdefault(aor, number.number)
            if holder != number.number:  # the registrar would fork every call to both
                conflicts[number.id] = (
                    f"{holder} already registers {aor[1]} at {key[0]}; one address of record"
                    " per number"
                )
                continue
            wanted[number.id] = (number, key)
        for number_id, error in conflicts.items():
            if self._conflicts.get(number_id) != error:
                self._spawn(self._numbers.set_registration(number_id, "failed", None, error))
        self._conflicts = conflicts
        for number_id, binding in list(self.bindings.items()):
            entry = wanted.get(number_id)
            if entry is None or entry[1] != binding.key:
                del self.bindings[number_id]
                self._retire(binding)
        for number_id, (number, key) in wanted.items():
            if number_id not in self.bindings:
                fresh = self._bind(number, key)
                if fresh is not None:
                    self.bindings[number_id] = fresh
                    await self._begin(fresh)
        self._update_gauge()

    def _bind(self, number: PhoneNumber, key: BindingKey) -> Binding | None:
        registrar = key[0].removeprefix("sip:")
        try:
            host, port = split_host_port(registrar)
        except SipParseError:
            log.warning("number %s: unusable registrar %r", number.id, registrar)
            return None
        credentials = None
        if number.auth_username and number.auth_password_encrypted:
            try:
                password = self._secret_box.decrypt(number.auth_password_encrypted)
            except InvalidSecret:
                log.warning("number %s: its trunk password cannot be decrypted", number.id)
                return None
            credentials = Credentials(number.auth_username, password)
        contact_host, contact_port = self._host.advertised_address
        via_host, via_port = self._host.outbound_address
        registration = Registration(
            user=number.auth_username or number.number,
            registrar_uri=f"sip:{registrar}",
            contact_uri=f"sip:{number.number}@{_uri_host(contact_host)}:{contact_port}",
            via_host=_uri_host(via_host),
            via_port=via_port,
            credentials=credentials,
            expires=self._expires,
            backoff=self._backoff,
        )
        return Binding(number.id, key, registration, host, port or 5060)

    # -- sending ---------------------------------------------------------------------------
    async def _begin(self, binding: Binding) -> None:
        """Resolve the registrar (each attempt: its address may move) and send a REGISTER."""
        binding.timer = None
        if binding.retired:
            return
        try:
            binding.destination = await _resolve(binding.registrar_host, binding.registrar_port)
        except OSError:
            loop = asyncio.get_running_loop()
            reason = f"registrar {binding.registrar_host!r} does not resolve"
            self._outcome(binding, binding.registration.on_timeout(loop.time(), reason))
            return
        if not binding.retired:
            self._send(binding, binding.registration.register())

    def _send(self, binding: Binding, request: SipRequest) -> None:
        destination = binding.destination
        if destination is None:
            return
        self._host.send_request(
            request,
            destination,
            lambda response: self._on_response(binding, response),
            lambda: self._on_timeout(binding),
            own_port=True,
        )

    def _on_response(self, binding: Binding, response: SipResponse) -> None:
        now = asyncio.get_running_loop().time()
        self._outcome(binding, binding.registration.on_response(response, now))

    def _on_timeout(self, binding: Binding) -> None:
        now = asyncio.get_running_loop().time()
        self._outcome(binding, binding.registration.on_timeout(now))

    def _outcome(self, binding: Binding, outcome: Outcome) -> None:
        registration = binding.registration
        if isinstance(outcome, Send):
            self._send(binding, outcome.request)
            return
        if isinstance(outcome, Unregistered):
            metrics.SIP_REGISTRATION_ATTEMPTS.labels("unregistered").inc()
            self._leaving.discard(binding)
            if not self._leaving:
                self._left.set()
            return
        if isinstance(outcome, Registered):
            metrics.SIP_REGISTRATION_ATTEMPTS.labels("registered").inc()
            log.info(
                "number %s registered at %s for %d s",
                binding.number_id, binding.registrar_host, outcome.expires,
            )  # fmt: skip
            self._arm(binding, outcome.refresh_at)
        elif isinstance(outcome, RegistrationFailed):
            result = "timeout" if outcome.status is None else "rejected"
            metrics.SIP_REGISTRATION_ATTEMPTS.labels(result).inc()
            log.warning(
                "number %s: registration at %s failed (%s); retrying in %.0f s",
                binding.number_id, binding.registrar_host, outcome.reason,
                outcome.retry_at - asyncio.get_running_loop().time(),
            )  # fmt: skip
            self._arm(binding, outcome.retry_at)
        else:
            return
        self._store(binding, registration)
        self._update_gauge()

    def _arm(self, binding: Binding, at: float) -> None:
        self._cancel_timer(binding)
        if binding.retired:
            return
        loop = asyncio.get_running_loop()
        binding.timer = loop.call_at(at, lambda: self._spawn(self._begin(binding)))

    def _cancel_timer(self, binding: Binding) -> None:
        if binding.timer is not None:
            binding.timer.cancel()
            binding.timer = None

    def _retire(self, binding: Binding) -> None:
        """The number stops registering: remove its binding if it has (or may have) one."""
        binding.retired = True
        self._cancel_timer(binding)
        # The binding is going: what the number showed of it no longer holds.
        self._spawn(self._numbers.set_registration(binding.number_id, None, None, None))
        registration = binding.registration
        if binding.destination is None or registration.cseq == 0 or registration.state == "failed":
            return  # nothing was ever bound (a failed binding lapses at the registrar)
        self._leaving.add(binding)
        self._left.clear()
        self._send(binding, registration.unregister())

    # -- status --------------------------------------------------------------------------
    def _store(self, binding: Binding, registration: Registration) -> None:
        if binding.retired:
            return
        expires_at = None
        if registration.expires_at is not None:
            remaining = registration.expires_at - asyncio.get_running_loop().time()
            expires_at = datetime.now(UTC) + timedelta(seconds=max(0.0, remaining))
        self._spawn(
            self._numbers.set_registration(
                binding.number_id, registration.state, expires_at, registration.last_error
            )
        )

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("registration work failed (status write or REGISTER): %s", task.exception())

    def _update_gauge(self) -> None:
        counts = dict.fromkeys(GAUGE_STATES, 0)
        for binding in self.bindings.values():
            state = binding.registration.state
            if state in counts:
                counts[state] += 1
        counts["failed"] += len(self._conflicts)
        for state, count in counts.items():
            metrics.SIP_REGISTRATIONS.labels(state).set(count)


def _uri_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def _resolve(host: str, port: int) -> SipAddress:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, family=socket.AF_INET, type=socket.SOCK_DGRAM)
    return (str(infos[0][4][0]), int(infos[0][4][1]))
