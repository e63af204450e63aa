"""The RFC 4475 torture corpus sent to a running trunkline over UDP on loopback.

Each message gets the answer ``tests/sip/torture/expected.toml`` states (INVITEs are
acknowledged like a UAC would), nothing else, and no error is logged. After the whole
corpus, trunkline still answers OPTIONS, keeps at most one transaction per message,
and none once the SIP timers have passed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from tests.gateway.conftest import Trunkline
from tests.gateway.sip_peer import Inbox, bind_udp
from tests.sip.torture_corpus import CORPUS, TortureCase
from trunkline.gateway.sip.message import SipRequest, SipResponse, parse_message
from trunkline.gateway.sip.transaction import T1, T4

QUIET_SECONDS = 0.2  # how long a message is given to draw an answer it should not get


@dataclass
class Uac:
    """A UDP socket on loopback sending raw messages to trunkline and reading its answers."""

    transport: asyncio.DatagramTransport
    inbox: Inbox
    target: tuple[str, int]

    def send(self, data: bytes) -> None:
        self.transport.sendto(data, self.target)

    async def next_response(self, wait: float) -> SipResponse | None:
        try:
            data = await asyncio.wait_for(self.inbox.queue.get(), wait)
        except TimeoutError:
            return None
        response = parse_message(data)  # whatever trunkline sends parses as a response
        assert isinstance(response, SipResponse), data[:200]
        return response


@pytest.fixture
async def uac(trunkline: Trunkline) -> AsyncIterator[Uac]:
    await trunkline.number("auto_reject", None)  # +15550100001: an INVITE read in full gets 603
    transport, inbox, _ = await bind_udp()
    try:
        yield Uac(transport, inbox, ("127.0.0.1", trunkline.sip_port))
    finally:
        transport.close()


def ack_for(case: TortureCase, final: SipResponse) -> bytes:
    """The ACK of a non-2xx final response, as the INVITE's client transaction sends it."""
    ack = SipRequest(method="ACK", uri=case.data.split(b" ")[1].decode())
    ack.headers.add("Via", final.headers.get("Via") or "")
    for name in ("From", "To", "Call-ID"):
        ack.headers.add(name, final.headers.get(name) or "")
    ack.headers.add("CSeq", f"{final.cseq[0]} ACK")
    ack.headers.add("Max-Forwards", "70")
    return ack.serialize()


async def exchange(uac: Uac, case: TortureCase) -> None:
    """Send one message; check its answer (and that nothing else comes back)."""
    uac.send(case.data)
    final: SipResponse | None = None
    if case.answer is not None:
        while final is None:
            response = await uac.next_response(10.0)
            assert response is not None, f"{case.name}: no final response"
            if response.status >= 200:
                final = response
            else:
                assert response.status == 100 and case.method == "INVITE", response
        assert final.status == case.answer, f"{case.name}: {final.status} {final.reason}"
        # A malformed INVITE's 400 or 505 is sent statelessly: no transaction waits for an
        # ACK, which would be as malformed as the INVITE was.
        if case.method == "INVITE" and final.status >= 300 and final.status not in (400, 505):
            uac.send(ack_for(case, final))
    straggler = await uac.next_response(QUIET_SECONDS)
    assert straggler is None, f"{case.name}: also answered {straggler.status}"


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.name)
async def test_each_torture_message_gets_its_answer(
    trunkline: Trunkline, uac: Uac, case: TortureCase, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = trunkline.gateway.endpoint
    dropped_before = endpoint.malformed_dropped
    with caplog.at_level(logging.ERROR):
        await exchange(uac, case)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert endpoint.malformed_dropped - dropped_before == (1 if case.dropped else 0)
    assert trunkline.gateway.calls == {}


async def test_after_the_whole_corpus_trunkline_serves_on_and_frees_every_transaction(
    trunkline: Trunkline, uac: Uac, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = trunkline.gateway.endpoint
    with caplog.at_level(logging.ERROR):
        for case in CORPUS:
            await exchange(uac, case)
        probe = (
            "OPTIONS sip:trunk.example.net SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK-after-corpus\r\n"
            "From: <sip:probe@example.org>;tag=probe\r\nTo: <sip:trunk.example.net>\r\n"
            "Call-ID: after-corpus@example.org\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        uac.send(probe.encode())
        answer = await uac.next_response(5.0)
        assert answer is not None and answer.status == 200
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert trunkline.gateway.calls == {}
    # At most one per message until their timers end (the OPTIONS and 405s wait for Timer J).
    assert 0 < endpoint.transactions <= len(CORPUS) + 1
    # Past Timer J (64*T1) and Timer I (T4) every transaction is over and forgotten.
    loop = asyncio.get_running_loop()
    later = loop.time() + 64 * T1 + T4 + 1
    endpoint.now = lambda: later
    endpoint.fire_timers()
    assert endpoint.transactions == 0
