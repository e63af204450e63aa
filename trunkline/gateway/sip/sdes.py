"""SRTP keys exchanged in the SDP (SDES, RFC 4568), sans I/O.

An ``a=crypto:<tag> <suite> inline:<key||salt>`` line carries the master key
and salt its sender protects with. trunkline speaks AES_CM_128_HMAC_SHA1_80
and AES_CM_128_HMAC_SHA1_32 (30 bytes of key and salt each, from
``secrets``); lines with other suites, a lifetime, an MKI, several keys or
session parameters are skipped as unusable. The keys travel in clear inside
the SDP, so SRTP is used only when the signalling runs over TLS.

Policy (``TRUNKLINE_SIP_SRTP``): ``off`` answers plain RTP and refuses an
``RTP/SAVP`` offer; ``optional`` answers SRTP when the offer brings a usable
crypto line (``RTP/SAVP``, or best-effort on ``RTP/AVP``), plain RTP
otherwise; ``mandatory`` refuses an offer without one. Our own offers on a
TLS trunk are ``RTP/SAVP`` when SRTP is mandatory and best-effort ``RTP/AVP``
with crypto lines when optional. The keys are never logged: ``Crypto`` and
``SrtpKeys`` keep them out of their ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass, field

from trunkline.gateway.sip.sdp import MediaDescription, SdpError

KEY_SALT_BYTES = 30  # 128-bit master key + 112-bit master salt
SUITES = ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32")  # in order of preference
SECURE_PROFILE = "RTP/SAVP"
PLAIN_PROFILE = "RTP/AVP"
OFF, OPTIONAL, MANDATORY = "off", "optional", "mandatory"


def new_key() -> bytes:
    """A fresh master key and salt."""
    return secrets.token_bytes(KEY_SALT_BYTES)


@dataclass(frozen=True, slots=True)
class Crypto:
    """One ``a=crypto`` attribute (its value, after ``a=crypto:``)."""

    tag: int
    suite: str
    key: bytes = field(repr=False)

    @property
    def value(self) -> str:
        return f"{self.tag} {self.suite} inline:{base64.b64encode(self.key).decode()}"

    @classmethod
    def parse(cls, value: str) -> Crypto | None:
        """The attribute when trunkline can use it, else None."""
        parts = value.split()
        if len(parts) != 3 or not parts[0].isdigit() or len(parts[0]) > 9:
            return None  # session parameters (a 4th field) are not supported
        suite = parts[1].upper()
        if suite not in SUITES or not parts[2].startswith("inline:"):
            return None
        key_params = parts[2].removeprefix("inline:")
        if ";" in key_params or "|" in key_params:
            return None  # several keys, a lifetime or an MKI
        try:
            key = base64.b64decode(key_params, validate=True)
        except (binascii.Error, ValueError):
            return None
        if len(key) != KEY_SALT_BYTES:
            return None
        return cls(int(parts[0]), suite, key)


@dataclass(frozen=True, slots=True)
class SrtpKeys:
    """The negotiated SRTP of a call: the suite, our key (what we send is protected with
    it) and the far end's (what we receive)."""

    suite: str
    local_key: bytes = field(repr=False)
    remote_key: bytes = field(repr=False)
    tag: int = 1

    @property
    def local_crypto(self) -> Crypto:
        return Crypto(self.tag, self.suite, self.local_key)


def usable_cryptos(media: MediaDescription) -> list[Crypto]:
    return [c for c in (Crypto.parse(v) for v in media.crypto) if c is not None]


def is_secure_profile(media: MediaDescription) -> bool:
    return media.profile.upper() == SECURE_PROFILE


def answer_offer(offer: MediaDescription, policy: str, *, over_tls: bool) -> SrtpKeys | None:
    """The SRTP an answer to ``offer`` uses (None: plain RTP); SdpError to refuse it (488)."""
    secure = is_secure_profile(offer)
    if policy == OFF or not over_tls:
        if secure:
            raise SdpError("SRTP is off" if policy == OFF else "SRTP needs SIP over TLS")
        return None
    usable = usable_cryptos(offer)
    if not usable:
        if secure:
            raise SdpError("no supported SRTP crypto suite offered")
        if policy == MANDATORY:
            raise SdpError("SRTP is required")
        return None
    chosen = min(usable, key=lambda c: SUITES.index(c.suite))
    return SrtpKeys(chosen.suite, new_key(), chosen.key, chosen.tag)


def offer_cryptos(policy: str, *, over_tls: bool) -> list[Crypto]:
    """The crypto lines of our offer (none unless SRTP may be used)."""
    if policy == OFF or not over_tls:
        return []
    return [Crypto(tag, suite, new_key()) for tag, suite in enumerate(SUITES, start=1)]


def offer_profile(policy: str, cryptos: list[Crypto]) -> str:
    return SECURE_PROFILE if cryptos and policy == MANDATORY else PLAIN_PROFILE


def accept_answer(offered: list[Crypto], answer: MediaDescription, policy: str) -> SrtpKeys | None:
    """The SRTP the far end chose from our offer (None: plain RTP); SdpError when the
    answer cannot be used (an unknown tag, or plain RTP where SRTP is required)."""
    if not offered:
        if is_secure_profile(answer):
            raise SdpError("SRTP answered to a plain RTP offer")
        return None
    by_tag = {c.tag: c for c in offered}
    for crypto in usable_cryptos(answer):
        mine = by_tag.get(crypto.tag)
        if mine is not None and mine.suite == crypto.suite:
            return SrtpKeys(mine.suite, mine.key, crypto.key, mine.tag)
    if answer.crypto or policy == MANDATORY or is_secure_profile(answer):
        raise SdpError("no usable SRTP crypto in the answer")
    return None
