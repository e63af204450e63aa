"""HTTP digest authentication as SIP uses it (RFC 3261 §22, RFC 2617, RFC 7616).

Client side: answer a 401/407 challenge with MD5 or SHA-256, ``qop=auth``
when offered. Server side: issue challenges whose nonce carries its own
timestamp under an HMAC (no state kept), and check responses in constant
time, giving the same answer for an unknown user and a wrong password.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
NONCE_LIFETIME_SECONDS = 300
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


class DigestServer:
    """Stateless challenges and constant-time verification for one realm."""

    def __init__(self, realm: str, secret: bytes, algorithm: str = "MD5") -> None:
        if algorithm not in ALGORITHMS:
            raise DigestError(f"unsupported algorithm {algorithm!r}")
        self.realm = realm
        self.algorithm = algorithm
        self._secret = secret

    def _nonce(self, issued: int) -> str:
        mac = hmac.new(self._secret, str(issued).encode(), hashlib.sha256).hexdigest()[:32]
        return f"{issued:x}.{mac}"

    def challenge(self, now: float | None = None, *, stale: bool = False) -> str:
        nonce = self._nonce(int(time.time() if now is None else now))
        header = (
            f'Digest realm="{self.realm}", nonce="{nonce}", algorithm={self.algorithm}, qop="auth"'
        )
        return header + (", stale=true" if stale else "")

    def nonce_state(self, nonce: str, now: float) -> str:
        """ "valid", "stale" (ours, expired) or "invalid"."""
        issued_hex, _, _ = nonce.partition(".")
        try:
            issued = int(issued_hex, 16)
        except ValueError:
            return "invalid"
        if not hmac.compare_digest(self._nonce(issued), nonce):
            return "invalid"
        return "valid" if 0 <= now - issued <= NONCE_LIFETIME_SECONDS else "stale"

    def verify(
        self, header: str, method: str, passwords: dict[str, str], now: float | None = None
    ) -> str:
        """ "ok", "stale" or "denied" — unknown users and wrong passwords look the same."""
        current = time.time() if now is None else now
        try:
            scheme, params = parse_params(header)
        except DigestError:
            return "denied"
        if scheme.lower() != "digest" or params.get("realm") != self.realm:
            return "denied"
        state = self.nonce_state(params.get("nonce", ""), current)
        if state != "valid":
            return "stale" if state == "stale" else "denied"
        username = params.get("username", "")
        # A fixed dummy password keeps the work the same for unknown users.
        password = passwords.get(username, "\x00unknown\x00")
        expected = digest_response(
            algorithm=self.algorithm, username=username, realm=self.realm, password=password,
            method=method, uri=params.get("uri", ""), nonce=params.get("nonce", ""),
            qop=params.get("qop"), nc=params.get("nc", ""), cnonce=params.get("cnonce", ""),
        )  # fmt: skip
        matches = hmac.compare_digest(expected, params.get("response", ""))
        return "ok" if matches and username in passwords else "denied"
