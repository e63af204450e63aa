"""Outbound registration (RFC 3261 §10) as a sans-I/O state machine.

``Registration`` keeps one binding alive at a registrar: the address of record
(``sip:user@registrar``) pointing at our Contact. It builds each REGISTER (one
Call-ID for its whole life, CSeq counting up), answers 401/407 digest
challenges (``qop=auth`` with a counting ``nc``, re-using the last nonce on a
refresh until the registrar asks again), raises the requested expiry to the
registrar's ``Min-Expires`` on 423, reads the granted expiry from our Contact's
``expires`` parameter (else the ``Expires`` header) on 2xx, and decides when
the next REGISTER is due: a refresh at 50-80 % of the granted time, or after a
failure an exponential back-off with jitter, bounded. ``unregister`` builds the
``Expires: 0`` REGISTER that removes the binding. Time is always passed in and
randomness comes from ``random``, so every decision is testable; the asyncio
driver (``gateway/registrations.py``) sends what this builds.
"""

from __future__ import annotations

import random as random_module
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from trunkline.gateway.sip.digest import Challenge, DigestError
from trunkline.gateway.sip.header_values import Address, SipUri
from trunkline.gateway.sip.headers import split_list
from trunkline.gateway.sip.message import SipRequest, SipResponse
from trunkline.gateway.sip.parse_error import SipParseError
from trunkline.gateway.sip.uac import USER_AGENT, Credentials

DEFAULT_EXPIRES = 3600
REFRESH_FRACTION = (0.5, 0.8)  # refresh somewhere in this share of the granted time
MAX_CHALLENGES_PER_ATTEMPT = 2  # a fresh answer refused twice is a wrong password
STATES = ("pending", "registered", "failed", "unregistered")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Retry delays after failures: ``initial`` doubling up to ``maximum``, with jitter.

    The n-th consecutive failure waits a random time between half and all of
    ``min(maximum, initial * 2**(n-1))``, so registrations that failed together
    do not retry together.
    """

    initial: float = 30.0
    maximum: float = 1800.0

    def delay(self, failures: int, draw: float) -> float:
        ceiling = min(self.maximum, self.initial * 2 ** max(0, failures - 1))
        return ceiling * (0.5 + 0.5 * draw)


@dataclass(frozen=True, slots=True)
class Send:
    """Send this REGISTER in a new client transaction."""

    request: SipRequest


@dataclass(frozen=True, slots=True)
class Registered:
    expires: int  # seconds the registrar granted
    refresh_at: float


@dataclass(frozen=True, slots=True)
class RegistrationFailed:
    reason: str
    retry_at: float
    status: int | None = None


@dataclass(frozen=True, slots=True)
class Unregistered:
    pass


Outcome = Send | Registered | RegistrationFailed | Unregistered | None


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(10)


@dataclass
class Registration:
    """One binding at one registrar, refreshed until ``unregister``."""

    user: str  # the address of record's user part (usually the SIP username)
    registrar_uri: str  # the Request-URI: ``sip:host[:port]``
    contact_uri: str  # where calls for the address of record should come: ``sip:user@ip:port``
    via_host: str
    via_port: int
    credentials: Credentials | None = None
    expires: int = DEFAULT_EXPIRES
    backoff: Backoff = field(default_factory=Backoff)
    random: Callable[[], float] = random_module.random
    call_id: str = field(default_factory=lambda: secrets.token_hex(16) + "@trunkline")
    local_tag: str = field(default_factory=lambda: secrets.token_hex(8))
    cseq: int = 0
    state: str = "pending"
    last_error: str | None = None
    granted: int | None = None  # seconds granted by the last 2xx
    expires_at: float | None = None  # when the binding lapses (our clock)
    next_at: float = 0.0  # when the next REGISTER is due
    failures: int = 0  # consecutive failed attempts
    current: SipRequest | None = None
    _challenge: tuple[str, Challenge] | None = None  # (answer header name, challenge)
    _nonce_count: int = 0
    _challenges_this_attempt: int = 0
    _fresh_answer: bool = False  # the request in flight answers a challenge of this attempt
    _unregistering: bool = False

    @property
    def aor(self) -> str:
        """The address of record: our user at the registrar's domain."""
        return f"sip:{self.user}@{self.registrar_uri.removeprefix('sip:')}"

    # -- requests ------------------------------------------------------------------------
    def register(self) -> SipRequest:
        """A REGISTER asking for ``expires`` seconds; starts a new attempt."""
        self._unregistering = False
        self._challenges_this_attempt = 0
        self._fresh_answer = False
        return self._build(self.expires)

    def unregister(self) -> SipRequest:
        """The REGISTER that removes our binding (``Expires: 0``)."""
        self._unregistering = True
        self._challenges_this_attempt = 0
        self._fresh_answer = False
        return self._build(0)

    def _build(self, expires: int) -> SipRequest:
        self.cseq += 1
        request = SipRequest(method="REGISTER", uri=self.registrar_uri)
        request.headers.add(
            "Via", f"SIP/2.0/UDP {self.via_host}:{self.via_port};branch={new_branch()};rport"
        )
        request.headers.add("Max-Forwards", "70")
        request.headers.add("From", f"<{self.aor}>;tag={self.local_tag}")
        request.headers.add("To", f"<{self.aor}>")
        request.headers.add("Call-ID", self.call_id)
        request.headers.add("CSeq", f"{self.cseq} REGISTER")
        request.headers.add("Contact", f"<{self.contact_uri}>;expires={expires}")
        request.headers.add("Expires", str(expires))
        request.headers.add("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS")
        request.headers.add("User-Agent", USER_AGENT)
        if self._challenge is not None and self.credentials is not None:
            answer, challenge = self._challenge
            self._nonce_count += 1
            request.headers.add(
                answer,
                challenge.authorization(
                    self.credentials.username,
                    self.credentials.password,
                    "REGISTER",
                    self.registrar_uri,
                    nc=self._nonce_count,
                ),
            )
        self.current = request
        return request

    # -- responses -----------------------------------------------------------------------
    def on_response(self, response: SipResponse, now: float) -> Outcome:
        """What to do about a final response to the REGISTER in flight."""
        status = response.status
        if status < 200:
            return None
        if 200 <= status < 300:
            return self._accepted(response, now)
        if status in (401, 407):
            return self._challenged(response, now)
        if status == 423 and not self._unregistering:
            return self._too_brief(response, now)
        return self._fail(f"registrar answered {status} {response.reason}".strip(), now, status)

    def on_timeout(self, now: float, reason: str = "no response from the registrar") -> Outcome:
        """The registrar never answered (Timer F), or could not be reached at all."""
        return self._fail(reason, now, None)

    def _accepted(self, response: SipResponse, now: float) -> Outcome:
        if self._unregistering:
            self.state = "unregistered"
            self.expires_at = None
            self.granted = None
            return Unregistered()
        granted = self._granted_expiry(response)
        if granted <= 0:
            return self._fail("registrar kept no binding for our contact", now, response.status)
        self.state = "registered"
        self.last_error = None
        self.failures = 0
        self.granted = granted
        self.expires_at = now + granted
        low, high = REFRESH_FRACTION
        self.next_at = now + granted * (low + (high - low) * self.random())
        return Registered(granted, self.next_at)

    def _granted_expiry(self, response: SipResponse) -> int:
        """Our Contact's ``expires`` in the 2xx, else its Expires header, else what we asked."""
        ours = _uri_key(self.contact_uri)
        for header in response.headers.get_all("Contact"):
            for value in split_list(header):
                try:
                    address = Address.parse(value)
                except SipParseError:
                    continue
                if _uri_key(address.uri) == ours and address.params.get("expires", "").isdigit():
                    return int(address.params["expires"])
        expires = (response.headers.get("Expires") or "").strip()
        return int(expires) if expires.isdigit() else self.expires

    def _challenged(self, response: SipResponse, now: float) -> Outcome:
        asked = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        answer = "Authorization" if response.status == 401 else "Proxy-Authorization"
        header = response.headers.get(asked)
        if self.credentials is None:
            return self._fail("registrar requires authentication", now, response.status)
        if header is None:
            return self._fail(f"{response.status} without a challenge", now, response.status)
        try:
            challenge = Challenge.parse(header)
        except DigestError as exc:
            return self._fail(f"unusable challenge: {exc}", now, response.status)
        stale = "stale=true" in header.replace(" ", "").replace('"', "").lower()
        if (self._fresh_answer and not stale) or (
            self._challenges_this_attempt >= MAX_CHALLENGES_PER_ATTEMPT
        ):
            self._challenge = None
            return self._fail("registrar rejected the credentials", now, response.status)
        self._challenges_this_attempt += 1
        self._challenge = (answer, challenge)
        self._nonce_count = 0
        self._fresh_answer = True
        return Send(self._build(0 if self._unregistering else self.expires))

    def _too_brief(self, response: SipResponse, now: float) -> Outcome:
        minimum = (response.headers.get("Min-Expires") or "").strip()
        if not minimum.isdigit() or int(minimum) <= self.expires:
            return self._fail("423 without a usable Min-Expires", now, response.status)
        self.expires = int(minimum)
        self._fresh_answer = False
        return Send(self._build(self.expires))

    def _fail(self, reason: str, now: float, status: int | None) -> Outcome:
        if self._unregistering:
            self.state = "unregistered"
            return Unregistered()
        self.failures += 1
        self.state = "failed"
        self.last_error = reason
        self.granted = None
        if self.expires_at is not None and self.expires_at <= now:
            self.expires_at = None
        self.next_at = now + self.backoff.delay(self.failures, self.random())
        return RegistrationFailed(reason, self.next_at, status)


def _uri_key(uri: str) -> tuple[str | None, str, int | None]:
    """What makes two Contact URIs the same binding: user, host and port."""
    try:
        parsed = SipUri.parse(uri)
    except SipParseError:
        return (None, uri, None)
    return (parsed.user, parsed.host, parsed.port or 5060)
