"""SRTP and SRTCP protection of one call's packets (RFC 3711), with libsrtp via pylibsrtp.

``SrtpContext`` holds two libsrtp sessions: ours, protecting what is sent
with our master key, and the far end's, unprotecting what arrives with its
key (any SSRC). A packet that fails to unprotect (authentication failure, a
replay, one too old for the replay window) is dropped and counted in
``trunkline_srtp_packets_dropped_total`` by kind and reason; it never reaches
the session. The keys come from the SDP (``sip.sdes``) and are never logged.
"""

from __future__ import annotations

from pylibsrtp import Error, Policy, Session

from trunkline import metrics

PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
}


def _reason(error: Error) -> str:
    text = str(error)
    if text.startswith("authentication"):
        return "auth"
    if text.startswith("replay") or "too old" in text:
        return "replay"
    return "other"


class SrtpContext:
    """Protect outgoing and unprotect incoming RTP and RTCP of one call."""

    __slots__ = ("_rx", "_tx", "dropped_rtcp", "dropped_rtp", "suite")

    def __init__(self, suite: str, local_key: bytes, remote_key: bytes) -> None:
        profile = PROFILES[suite]
        self.suite = suite
        self._tx = Session(
            Policy(key=local_key, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile)
        )
        self._rx = Session(
            Policy(key=remote_key, ssrc_type=Policy.SSRC_ANY_INBOUND, srtp_profile=profile)
        )
        self.dropped_rtp = 0
        self.dropped_rtcp = 0

    def protect(self, packet: bytes) -> bytes:
        return bytes(self._tx.protect(packet))

    def protect_rtcp(self, packet: bytes) -> bytes:
        return bytes(self._tx.protect_rtcp(packet))

    def unprotect(self, packet: bytes) -> bytes | None:
        """The RTP packet inside, or None (dropped and counted) when it does not verify."""
        try:
            return bytes(self._rx.unprotect(packet))
        except (Error, ValueError) as exc:
            self.dropped_rtp += 1
            reason = _reason(exc) if isinstance(exc, Error) else "other"
            metrics.SRTP_DROPPED.labels("rtp", reason).inc()
            return None

    def unprotect_rtcp(self, packet: bytes) -> bytes | None:
        try:
            return bytes(self._rx.unprotect_rtcp(packet))
        except (Error, ValueError) as exc:
            self.dropped_rtcp += 1
            reason = _reason(exc) if isinstance(exc, Error) else "other"
            metrics.SRTP_DROPPED.labels("rtcp", reason).inc()
            return None
