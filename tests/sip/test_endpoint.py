"""The SIP endpoint without sockets: a recording transport, a fake application, a fake clock."""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass, field
from typing import cast

import pytest

from tests.fakes.clock import FakeClock
from trunkline.gateway.sip.admission import SourceBudget
from trunkline.gateway.sip.application import Transport
from trunkline.gateway.sip.endpoint import SipEndpoint
from trunkline.gateway.sip.header_values import Address
from trunkline.gateway.sip.message import SipRequest, SipResponse, parse_message, response_to
from trunkline.gateway.sip.transaction import NEVER, T1, T4, ServerTransaction

CARRIER = ("192.0.2.10", 5060)
STRANGER = ("203.0.113.66", 5060)


class SentDatagrams:
    """Stands in for the UDP transport: keeps what was sent, and where."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def sendto(self, data: bytes, address: tuple[str, int]) -> None:
        self.sent.append((data, address))

    def close(self) -> None:
        return None

    def responses(self) -> list[SipResponse]:
        parsed = [parse_message(data) for data, _ in self.sent]
        return [message for message in parsed if isinstance(message, SipResponse)]


@dataclass
class FakeApplication:
    """Serves whatever it is offered; answers INVITEs 486 at once; remembers what it saw."""

    endpoint: SipEndpoint | None = None
    offered: list[str] = field(default_factory=list)
    invites: list[ServerTransaction] = field(default_factory=list)
    ack_timeouts: list[ServerTransaction] = field(default_factory=list)
    stray: list[SipResponse] = field(default_factory=list)
    answer_invites: bool = True

    def on_request(
        self,
        request: SipRequest,
        source: tuple[str, int],
        *,
        trusted: bool,
        via: Transport | None,
    ) -> None:
        assert self.endpoint is not None
        self.offered.append(request.method)
        if request.method != "ACK":
            self.endpoint.serve(request, source, trusted=trusted, via=via)

    def on_invite(
        self, transaction: ServerTransaction, source: tuple[str, int], trusted: bool
    ) -> None:
        assert self.endpoint is not None
        self.invites.append(transaction)
        if self.answer_invites:
            self.endpoint.respond(transaction, response_to(transaction.request, 486, to_tag="t"))

    def on_bye(self, transaction: ServerTransaction) -> None:
        assert self.endpoint is not None
        self.endpoint.respond(transaction, response_to(transaction.request, 200))

    def on_cancel(self, transaction: ServerTransaction) -> None:
        assert self.endpoint is not None
        self.endpoint.respond(transaction, response_to(transaction.request, 481))

    def on_ack_timeout(self, transaction: ServerTransaction) -> None:
        self.ack_timeouts.append(transaction)

    def on_stray_response(self, response: SipResponse) -> None:
        self.stray.append(response)


def request(method: str, *, branch: str = "z9hG4bKone", cseq: int = 1) -> bytes:
    message = SipRequest(method=method, uri="sip:+15550100001@192.0.2.1")
    message.headers.add("Via", f"SIP/2.0/UDP 192.0.2.10:5060;branch={branch}")
    message.headers.add("From", "<sip:+14155550123@192.0.2.10>;tag=theirs")
    message.headers.add("To", "<sip:+15550100001@192.0.2.1>")
    message.headers.add("Call-ID", "abc@carrier")
    message.headers.add("CSeq", f"{cseq} {method}")
    message.headers.add("Max-Forwards", "70")
    return message.serialize()


def endpoint(
    *, trusted: bool = True, rate: float = 5.0
) -> tuple[SipEndpoint, FakeApplication, SentDatagrams, FakeClock]:
    clock = FakeClock()
    application = FakeApplication()
    networks = [ipaddress.ip_network("192.0.2.0/24")] if trusted else []
    sip = SipEndpoint(application, networks, SourceBudget(rate), now=clock)
    application.endpoint = sip
    sent = SentDatagrams()
    sip.transport = cast(asyncio.DatagramTransport, sent)
    return sip, application, sent, clock


async def test_options_and_unknown_methods_are_answered_by_the_endpoint() -> None:
    sip, application, sent, _ = endpoint()
    sip.datagram_received(request("OPTIONS"), CARRIER)
    sip.datagram_received(request("SUBSCRIBE", branch="z9hG4bKtwo"), CARRIER)
    assert application.offered == ["OPTIONS", "SUBSCRIBE"]
    options, subscribe = sent.responses()
    assert options.status == 200 and options.headers.get("Allow")
    assert options.headers.get("Accept") == "application/sdp"
    assert subscribe.status == 405
    assert [address for _, address in sent.sent] == [CARRIER, CARRIER]
    sip.close()


async def test_options_is_answered_503_while_the_process_takes_no_calls() -> None:
    sip, _, sent, _ = endpoint()
    taking_calls = [True]
    sip.available = lambda: taking_calls[0]
    sip.datagram_received(request("OPTIONS"), CARRIER)
    taking_calls[0] = False  # draining: a load balancer's probe must see it
    sip.datagram_received(request("OPTIONS", branch="z9hG4bKtwo"), CARRIER)
    ready, draining = sent.responses()
    assert ready.status == 200 and ready.headers.get("Retry-After") is None
    assert draining.status == 503 and draining.headers.get("Retry-After") == "30"
    assert draining.headers.get("Allow")
    sip.close()


async def test_keep_alives_are_ignored_and_garbage_is_counted() -> None:
    sip, application, sent, _ = endpoint()
    sip.datagram_received(b"\r\n\r\n", CARRIER)
    sip.datagram_received(b"\x00\x01 not sip", CARRIER)
    assert sip.malformed_dropped == 1
    assert not sent.sent and not application.offered


async def test_a_request_missing_headers_gets_400() -> None:
    sip, application, sent, _ = endpoint()
    broken = request("OPTIONS").replace(b"CSeq: 1 OPTIONS\r\n", b"")
    sip.datagram_received(broken, CARRIER)
    assert sip.bad_requests == 1
    assert not application.offered
    assert [r.status for r in sent.responses()] == [400]


async def test_a_retransmission_is_answered_from_its_transaction_not_offered_again() -> None:
    sip, application, sent, _ = endpoint()
    sip.datagram_received(request("OPTIONS"), CARRIER)
    sip.datagram_received(request("OPTIONS"), CARRIER)
    assert application.offered == ["OPTIONS"]
    assert len(sent.sent) == 2 and sent.sent[0] == sent.sent[1]


async def test_a_branch_replayed_from_another_source_is_refused_silently() -> None:
    sip, application, sent, _ = endpoint()
    sip.datagram_received(request("OPTIONS"), CARRIER)
    sip.datagram_received(request("OPTIONS"), ("192.0.2.99", 5060))
    assert sip.dialog_refused["foreign_retransmission"] == 1
    assert len(sent.sent) == 1


async def test_untrusted_sources_spend_a_budget_and_are_dropped_beyond_it() -> None:
    sip, application, sent, clock = endpoint(trusted=False, rate=1.0)  # a burst of 2
    for n in range(5):
        sip.datagram_received(request("OPTIONS", branch=f"z9hG4bK{n}"), STRANGER)
    assert len(application.offered) == 2 and sip.budget.dropped == 3
    clock.now += 1.0  # one more token
    sip.datagram_received(request("OPTIONS", branch="z9hG4bKlater"), STRANGER)
    assert len(application.offered) == 3


async def test_an_unacknowledged_final_response_is_resent_on_timer_g_until_timer_h() -> None:
    sip, application, sent, clock = endpoint()
    sip.datagram_received(request("INVITE"), CARRIER)
    assert [r.status for r in sent.responses()] == [486]
    assert sip.timer_at == clock.now + T1
    resent_at = []
    for _ in range(200):
        clock.now = sip.timer_at
        before = len(sent.sent)
        sip.fire_timers()
        if len(sent.sent) > before:
            resent_at.append(clock.now)
        if sip.timer_at == NEVER:
            break
    gaps = [round(b - a, 3) for a, b in zip([1000.0, *resent_at], resent_at, strict=False)]
    assert gaps[:4] == [0.5, 1.0, 2.0, 4.0]  # Timer G doubles up to T2
    assert max(gaps) == 4.0
    assert application.ack_timeouts == application.invites  # Timer H: 64·T1 without an ACK
    assert clock.now == 1000.0 + 64 * T1
    assert sip.transactions == 0


async def test_the_ack_stops_retransmission_and_the_transaction_is_then_forgotten() -> None:
    sip, application, sent, clock = endpoint()
    sip.datagram_received(request("INVITE"), CARRIER)
    sip.datagram_received(request("ACK"), CARRIER)  # same branch: the transaction absorbs it
    assert application.offered == ["INVITE"]
    while sip.timer_at != NEVER:
        clock.now = sip.timer_at
        sip.fire_timers()
    assert len(sent.sent) == 1  # no retransmission after the ACK
    assert not application.ack_timeouts and sip.transactions == 0


async def test_responses_reach_their_client_transaction_or_the_application() -> None:
    sip, application, sent, clock = endpoint()
    bye = parse_message(request("BYE", branch="z9hG4bKours"))
    assert isinstance(bye, SipRequest)
    answers: list[int] = []
    sip.send_request(bye, CARRIER, lambda response: answers.append(response.status))
    assert sent.sent == [(bye.serialize(), CARRIER)]
    clock.now = sip.timer_at
    sip.fire_timers()  # Timer E: the request again
    assert len(sent.sent) == 2
    sip.datagram_received(response_to(bye, 200).serialize(), CARRIER)
    assert answers == [200]
    other = parse_message(request("BYE", branch="z9hG4bKelse"))
    assert isinstance(other, SipRequest)
    sip.datagram_received(response_to(other, 200).serialize(), CARRIER)
    assert [r.status for r in application.stray] == [200]


async def test_a_request_never_answered_times_out_after_64_t1() -> None:
    sip, _, sent, clock = endpoint()
    bye = parse_message(request("BYE", branch="z9hG4bKlost"))
    assert isinstance(bye, SipRequest)
    timeouts: list[float] = []
    sip.send_request(bye, CARRIER, on_timeout=lambda: timeouts.append(clock.now))
    while sip.timer_at != NEVER:
        clock.now = sip.timer_at
        sip.fire_timers()
    assert timeouts == [1000.0 + 64 * T1]
    assert sip.transactions == 0


async def test_requests_that_cannot_be_served_are_refused_once_and_counted() -> None:
    sip, application, sent, _ = endpoint()
    hops = request("INVITE").replace(b"Max-Forwards: 70", b"Max-Forwards: 0")
    scheme = request("INVITE", branch="z9hG4bKtwo").replace(
        b"INVITE sip:+15550100001@192.0.2.1", b"INVITE http://example.com/"
    )
    extension = request("INVITE", branch="z9hG4bKthree").replace(
        b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nRequire: 100rel\r\n"
    )
    for datagram in (hops, scheme, extension):
        sip.datagram_received(datagram, CARRIER)
    assert application.offered == []  # none reached the application
    refused = sent.responses()
    assert [r.status for r in refused] == [483, 416, 420]
    assert refused[2].headers.get("Unsupported") == "100rel"
    assert all(Address.parse(r.headers.get("To") or "").tag for r in refused)
    assert sip.transactions == 0  # answered statelessly: nothing kept, nothing retransmitted
    counts = sip.dialog_refused
    assert (counts["too_many_hops"], counts["unsupported_uri_scheme"], counts["bad_extension"]) == (
        1,
        1,
        1,
    )


def rfc2543_request(
    method: str,
    *,
    host: str = "192.0.2.10",
    call_id: str = "old@carrier",
    from_tag: str = "theirs",
    to: str = "<sip:+15550100001@192.0.2.1>",
    cseq_method: str | None = None,
) -> bytes:
    """A request as an RFC 2543 UA sends it: no branch on its Via."""
    message = SipRequest(method=method, uri="sip:+15550100001@192.0.2.1")
    message.headers.add("Via", f"SIP/2.0/UDP {host}:5060")
    message.headers.add("From", f"<sip:+14155550123@{host}>;tag={from_tag}")
    message.headers.add("To", to)
    message.headers.add("Call-ID", call_id)
    message.headers.add("CSeq", f"1 {cseq_method or method}")
    message.headers.add("Max-Forwards", "70")
    return message.serialize()


async def test_branchless_requests_from_two_uas_are_two_transactions() -> None:
    sip, application, sent, _ = endpoint()
    application.answer_invites = False
    sip.datagram_received(rfc2543_request("INVITE"), CARRIER)
    other = rfc2543_request("INVITE", host="192.0.2.11", call_id="other@uac", from_tag="x")
    sip.datagram_received(other, ("192.0.2.11", 5060))
    assert len(application.invites) == 2 and sip.transactions == 2
    sip.datagram_received(rfc2543_request("INVITE"), CARRIER)  # a retransmission
    assert len(application.invites) == 2 and application.offered == ["INVITE", "INVITE"]
    # Same Via and Call-ID, another From tag: another transaction, not a retransmission.
    sip.datagram_received(rfc2543_request("INVITE", from_tag="second"), CARRIER)
    assert len(application.invites) == 3


async def test_a_branchless_cancel_and_ack_find_their_invite() -> None:
    sip, application, sent, clock = endpoint()
    application.answer_invites = False
    sip.datagram_received(rfc2543_request("INVITE"), CARRIER)
    (invite,) = application.invites
    assert sip.pending_invite(parse_cancel(rfc2543_request("CANCEL"))) is invite
    stranger_cancel = rfc2543_request("CANCEL", call_id="unrelated@carrier")
    assert sip.pending_invite(parse_cancel(stranger_cancel)) is None
    sip.respond(invite, response_to(invite.request, 486, to_tag="ours"))
    # The ACK carries the To tag of the 486; one with another tag acknowledges nothing here.
    wrong = rfc2543_request("ACK", to="<sip:+15550100001@192.0.2.1>;tag=else")
    sip.datagram_received(wrong, CARRIER)
    assert application.offered == ["INVITE", "ACK"] and invite.state.value == "completed"
    ack = rfc2543_request("ACK", to="<sip:+15550100001@192.0.2.1>;tag=ours")
    sip.datagram_received(ack, CARRIER)
    assert application.offered == ["INVITE", "ACK"]  # absorbed by the transaction
    assert invite.state.value == "confirmed"
    clock.now += T4
    sip.fire_timers()
    assert sip.transactions == 0


async def test_a_bare_magic_cookie_is_no_transaction_id() -> None:
    sip, application, sent, _ = endpoint()
    application.answer_invites = False
    sip.datagram_received(request("INVITE", branch="z9hG4bK"), CARRIER)
    again = request("INVITE", branch="z9hG4bK").replace(b"abc@carrier", b"def@carrier")
    sip.datagram_received(again, CARRIER)
    assert len(application.invites) == 2  # keyed the RFC 2543 way: two Call-IDs, two INVITEs


async def test_the_same_branch_from_two_sent_by_addresses_is_two_transactions() -> None:
    sip, application, sent, _ = endpoint()
    sip.datagram_received(request("OPTIONS"), CARRIER)
    other = request("OPTIONS").replace(b"UDP 192.0.2.10:5060", b"UDP 192.0.2.11:5060")
    sip.datagram_received(other, ("192.0.2.11", 5060))
    assert application.offered == ["OPTIONS", "OPTIONS"] and sip.transactions == 2


@pytest.mark.parametrize(
    ("datagram", "status"),
    [
        (request("OPTIONS").replace(b"SIP/2.0\r\n", b"SIP/7.0\r\n", 1), 505),
        (request("OPTIONS").replace(b"\r\n\r\n", b"\r\nContent-Length: 99\r\n\r\nv=0"), 400),
        (request("OPTIONS").replace(b"OPTIONS sip:", b"OPTIONS <sip:", 1), 400),
    ],
)
async def test_malformed_requests_that_can_be_routed_are_answered_once(
    datagram: bytes, status: int
) -> None:
    sip, application, sent, _ = endpoint()
    sip.datagram_received(datagram, CARRIER)
    assert [r.status for r in sent.responses()] == [status]
    assert sip.bad_requests == 1 and sip.transactions == 0 and not application.offered
    ack = datagram.replace(b"OPTIONS", b"ACK")
    sip.datagram_received(ack, CARRIER)  # an ACK is never answered: dropped, counted
    assert len(sent.sent) == 1 and sip.malformed_dropped == 1


def parse_cancel(data: bytes) -> SipRequest:
    message = parse_message(data)
    assert isinstance(message, SipRequest)
    return message


async def test_a_bad_request_names_what_is_wrong_once() -> None:
    sip, application, sent, _ = endpoint()
    sip.datagram_received(
        request("OPTIONS").replace(b"Max-Forwards: 70", b"Max-Forwards: 9x"), CARRIER
    )
    sip.datagram_received(
        request("OPTIONS", branch="z9hG4bKtwo").replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1), CARRIER
    )
    assert [r.reason for r in sent.responses()] == [
        "Bad Request (Max-Forwards is not 0-255)",
        "Version Not Supported (SIP version 'SIP/3.0' not supported)",
    ]
