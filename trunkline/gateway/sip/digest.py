"""HTTP digest authentication as SIP uses it (RFC 3261 §22, RFC 2617, RFC 7616).

Client side: answer a 401/407 challenge with MD5 or SHA-256, ``qop=auth``
when offered. Server side: issue challenges whose nonce carries its own
timestamp and the asker's host under an HMAC, check responses in constant
time, giving the same answer for an unknown user and a wrong password, and
refuse a nonce count that does not increase (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
DEFAULT_NONCE_LIFETIME_SECONDS = 30.0
MAX_TRACKED_NONCES = 10_000
# Why a digest answer was not accepted; "denied" ones get 403, the others a new challenge.
REFUSAL_REASONS = (
    "malformed", "unknown_nonce", "wrong_uri", "bad_credentials", "stale_nonce", "replayed",
)  # fmt: skip
DENIED_REASONS = frozenset({"malformed", "unknown_nonce", "wrong_uri", "bad_credentials"})
_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]+)\s*,?')


class DigestError(ValueError):
    """A challenge or credentials header that cannot be used."""


def parse_params(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    position = 0
    while position < len(rest):
        match = _PARAM.match(rest, position)
        if match is None:
            raise DigestError("malformed digest parameters")
        value = match.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[match.group(1).lower()] = value
        position = match.end()
    return scheme, params


def _hash(algorithm: str, text: str) -> str:
    return ALGORITHMS[algorithm](text.encode()).hexdigest()


def digest_response(
    *,
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None,
    nc: str,
    cnonce: str,
) -> str:
    ha1 = _hash(algorithm, f"{username}:{realm}:{password}")
    ha2 = _hash(algorithm, f"{method}:{uri}")
    if qop:
        return _hash(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _hash(algorithm, f"{ha1}:{nonce}:{ha2}")


@dataclass(frozen=True, slots=True)
class Challenge:
    realm: str
    nonce: str
    algorithm: str
    qop: str | None
    opaque: str | None

    @classmethod
    def parse(cls, header: str) -> Challenge:
        scheme, params = parse_params(header)
        if scheme.lower() != "digest":
            raise DigestError(f"unsupported scheme {scheme!r}")
        algorithm = params.get("algorithm", "MD5").upper()
        if algorithm not in ALGORITHMS:
            raise DigestError(f"unsupported algorithm {algorithm!r}")
        if "realm" not in params or "nonce" not in params:
            raise DigestError("challenge without realm or nonce")
        offered = [q.strip() for q in params.get("qop", "").split(",") if q.strip()]
        if offered and "auth" not in offered:
            raise DigestError("only qop=auth is supported")
        return cls(
            params["realm"], params["nonce"], algorithm, "auth" if offered else None,
            params.get("opaque"),
        )  # fmt: skip

    def authorization(
        self, username: str, password: str, method: str, uri: str, nc: int = 1
    ) -> str:
        cnonce = secrets.token_hex(8)
        count = f"{nc:08x}"
        response = digest_response(
            algorithm=self.algorithm, username=username, realm=self.realm, password=password,
            method=method, uri=uri, nonce=self.nonce, qop=self.qop, nc=count, cnonce=cnonce,
        )  # fmt: skip
        parts = [
            f'username="{username}"', f'realm="{self.realm}"', f'nonce="{self.nonce}"',
            f'uri="{uri}"', f'response="{response}"', f"algorithm={self.algorithm}",
        ]  # fmt: skip
        if self.qop:
            parts += [f"qop={self.qop}", f"nc={count}", f'cnonce="{cnonce}"']
        if self.opaque is not None:
            parts.append(f'opaque="{self.opaque}"')
        return "Digest " + ", ".join(parts)


NONCE_SALT_BYTES = 8


class NonceCounts:
    """The highest nonce count seen per nonce, for nonces that authenticated a request.

    Bounded: when full, the entry used first is forgotten and every nonce issued
    no later than it is treated as stale from then on, so forgetting never lets
    a replay through.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.evicted = 0
        self._highest: OrderedDict[str, tuple[int, int]] = OrderedDict()  # nonce: (issued, nc)
        self._forgotten_through = -1  # nonces issued at or before this are stale

    def __len__(self) -> int:
        return len(self._highest)

    def forgotten(self, issued: int) -> bool:
        return issued <= self._forgotten_through

    def advance(self, nonce: str, issued: int, count: int, expired_before: float) -> bool:
        """Record ``count`` for ``nonce``; False when it is not above the last one seen."""
        seen = self._highest.get(nonce)
        if seen is not None:
            if count <= seen[1]:
                return False
            self._highest[nonce] = (issued, count)
            return True
        while self._highest:
            oldest_issued = next(iter(self._highest.values()))[0]
            if oldest_issued >= expired_before:
                break
            self._highest.popitem(last=False)
        if len(self._highest) >= self.limit:
            _, (oldest_issued, _) = self._highest.popitem(last=False)
            self._forgotten_through = max(self._forgotten_through, oldest_issued)
            self.evicted += 1
            if self.forgotten(issued):
                return False
        self._highest[nonce] = (issued, count)
        return True


class DigestServer:
    """Challenges bound to the asker's address, and constant-time verification.

    A nonce is ``issued.HMAC(issued, source host)``: a nonce sent to one host
    is not valid from another, and it lives ``nonce_lifetime`` seconds (then
    the answer is a new challenge with ``stale=true``). The digest ``uri`` must
    be the Request-URI, and the nonce count must increase with every use of a
    nonce (without ``qop`` a nonce is good for one request), so a captured
    ``Authorization`` header cannot be sent again. Refusals are counted by
    reason in ``refusals``.
    """

    def __init__(
        self,
        realm: str,
        secret: bytes,
        algorithm: str = "MD5",
        *,
        nonce_lifetime: float = DEFAULT_NONCE_LIFETIME_SECONDS,
        max_tracked_nonces: int = MAX_TRACKED_NONCES,
    ) -> None:
        if algorithm not in ALGORITHMS:
            raise DigestError(f"unsupported algorithm {algorithm!r}")
        self.realm = realm
        self.algorithm = algorithm
        self.nonce_lifetime = nonce_lifetime
        self.counts = NonceCounts(max_tracked_nonces)
        self.refusals: dict[str, int] = dict.fromkeys(REFUSAL_REASONS, 0)
        self._secret = secret

    def _nonce(self, issued: int, salt: str, source: str) -> str:
        message = f"{issued}|{salt}|{source}".encode()
        mac = hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]
        return f"{issued:x}.{salt}.{mac}"

    def challenge(self, now: float | None = None, *, source: str, stale: bool = False) -> str:
        """A ``WWW-Authenticate`` value whose nonce only ``source`` (a host) may use."""
        # A random salt makes every challenge's nonce unique: two challenges to one host in
        # the same second must not share a nonce (its counts would refuse the second).
        issued = int(time.time() if now is None else now)
        nonce = self._nonce(issued, secrets.token_hex(NONCE_SALT_BYTES), source)
        header = (
            f'Digest realm="{self.realm}", nonce="{nonce}", algorithm={self.algorithm}, qop="auth"'
        )
        return header + (", stale=true" if stale else "")

    def _issued(self, nonce: str, source: str) -> int | None:
        """When ``nonce`` was issued to ``source``, or None when it is not one of ours for it."""
        issued_hex, _, rest = nonce.partition(".")
        salt, _, _ = rest.partition(".")
        try:
            issued = int(issued_hex, 16)
        except ValueError:
            return None
        if len(salt) != 2 * NONCE_SALT_BYTES or not salt.isalnum():
            return None
        if not hmac.compare_digest(self._nonce(issued, salt, source), nonce):
            return None
        return issued

    def nonce_state(self, nonce: str, now: float, *, source: str) -> str:
        """ "valid", "stale" (ours for ``source``, expired) or "invalid"."""
        issued = self._issued(nonce, source)
        if issued is None:
            return "invalid"
        if not 0 <= now - issued <= self.nonce_lifetime or self.counts.forgotten(issued):
            return "stale"
        return "valid"

    def _refuse(self, reason: str) -> str:
        self.refusals[reason] += 1
        return "denied" if reason in DENIED_REASONS else "stale"

    def verify(
        self,
        header: str,
        method: str,
        passwords: dict[str, str],
        now: float | None = None,
        *,
        uri: str,
        source: str,
    ) -> str:
        """ "ok", "stale" (ask again, ``stale=true``) or "denied".

        ``uri`` is the request's Request-URI and ``source`` the host it came
        from. Unknown users and wrong passwords look the same.
        """
        current = time.time() if now is None else now
        try:
            scheme, params = parse_params(header)
        except DigestError:
            return self._refuse("malformed")
        if scheme.lower() != "digest" or params.get("realm") != self.realm:
            return self._refuse("malformed")
        nonce = params.get("nonce", "")
        issued = self._issued(nonce, source)
        if issued is None:
            return self._refuse("unknown_nonce")
        if params.get("uri") != uri:
            return self._refuse("wrong_uri")
        qop = params.get("qop")
        if qop not in (None, "auth"):
            return self._refuse("malformed")
        count = 0
        if qop:
            try:
                count = int(params.get("nc", ""), 16)
            except ValueError:
                return self._refuse("malformed")
        username = params.get("username", "")
        # A fixed dummy password keeps the work the same for unknown users.
        password = passwords.get(username, "\x00unknown\x00")
        expected = digest_response(
            algorithm=self.algorithm, username=username, realm=self.realm, password=password,
            method=method, uri=uri, nonce=nonce, qop=qop,
            nc=params.get("nc", ""), cnonce=params.get("cnonce", ""),
        )  # fmt: skip
        matches = hmac.compare_digest(expected, params.get("response", ""))
        if not matches or username not in passwords:
            return self._refuse("bad_credentials")
        if self.nonce_state(nonce, current, source=source) == "stale":
            return self._refuse("stale_nonce")
        expired_before = current - self.nonce_lifetime
        if not self.counts.advance(nonce, issued, count, expired_before):
            return self._refuse("replayed")
        return "ok"
