"""SRTP at the RTP socket: protect/unprotect round trips, tampering and replays dropped."""

from __future__ import annotations

import pytest

from trunkline import metrics
from trunkline.gateway.rtp.packet import build_packet, parse_packet
from trunkline.gateway.rtp.rtcp import RtcpState, build_report
from trunkline.gateway.rtp.srtp import SrtpContext
from trunkline.gateway.sip.sdes import new_key


def rtp(sequence: int) -> bytes:
    return build_packet(
        b"\x55" * 160, payload_type=0, sequence=sequence, timestamp=160 * sequence, ssrc=0x1234
    )


def dropped(kind: str, reason: str) -> float:
    return metrics.SRTP_DROPPED.labels(kind, reason)._value.get()


@pytest.mark.parametrize("suite", ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"])
def test_each_side_reads_what_the_other_protects(suite: str) -> None:
    ours, theirs = new_key(), new_key()
    here = SrtpContext(suite, ours, theirs)
    there = SrtpContext(suite, theirs, ours)
    protected = here.protect(rtp(1))
    assert protected != rtp(1) and len(protected) == len(rtp(1)) + (10 if "80" in suite else 4)
    assert there.unprotect(protected) == rtp(1)
    assert parse_packet(here.unprotect(there.protect(rtp(7))) or b"").sequence == 7
    report = build_report(
        ssrc=0x1234, rtp_timestamp=0, packets_sent=1, octets_sent=160, stats=None,
        state=RtcpState(), now_unix=1.0, now_mono=1.0,
    )  # fmt: skip
    assert there.unprotect_rtcp(here.protect_rtcp(report)) == report


def test_tampered_replayed_and_wrongly_keyed_packets_are_dropped_and_counted() -> None:
    ours, theirs = new_key(), new_key()
    here = SrtpContext("AES_CM_128_HMAC_SHA1_80", ours, theirs)
    there = SrtpContext("AES_CM_128_HMAC_SHA1_80", theirs, ours)
    auth_before, replay_before = dropped("rtp", "auth"), dropped("rtp", "replay")
    protected = bytearray(here.protect(rtp(1)))
    assert there.unprotect(bytes(protected)) is not None
    assert there.unprotect(bytes(protected)) is None  # the same packet again: a replay
    protected[20] ^= 0xFF
    assert there.unprotect(bytes(here.protect(rtp(2)))[:-1] + b"\x00") is None  # bad tag
    stranger = SrtpContext("AES_CM_128_HMAC_SHA1_80", new_key(), new_key())
    assert there.unprotect(stranger.protect(rtp(3))) is None  # another key
    assert there.unprotect(rtp(4)) is None  # plain RTP on an SRTP call
    assert there.dropped_rtp == 4
    assert dropped("rtp", "replay") == replay_before + 1
    assert dropped("rtp", "auth") == auth_before + 3
    assert there.unprotect_rtcp(b"\x80\xc8\x00\x06" + b"\x00" * 40) is None
    assert there.dropped_rtcp == 1
