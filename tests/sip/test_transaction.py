"""Transaction timers driven by hand: retransmissions, ACK handling and timeouts."""

from __future__ import annotations

from trunkline.gateway.sip.message import SipRequest, SipResponse, parse_message, response_to
from trunkline.gateway.sip.transaction import T1, T2, ClientTransaction, ServerTransaction, State

PEER = ("127.0.0.1", 5062)


def request(method: str) -> SipRequest:
    raw = (
        f"{method} sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1\r\n"
        f"From: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: c1\r\nCSeq: 1 {method}\r\n\r\n"
    ).encode()
    parsed = parse_message(raw)
    assert isinstance(parsed, SipRequest)
    return parsed


def test_invite_server_retransmits_final_response_until_ack() -> None:
    invite = request("INVITE")
    timeouts: list[ServerTransaction] = []
    transaction = ServerTransaction(invite, PEER, timeouts.append)
    assert len(transaction.respond(response_to(invite, 180, to_tag="t"), 0.0)) == 1
    assert transaction.on_retransmission(invite, 0.1)  # resends the 180
    transaction.respond(response_to(invite, 200, to_tag="t"), 1.0)
    times = []
    now = 1.0
    while now < 1.0 + 40 and transaction.state == State.COMPLETED:
        now = transaction.deadline
        if transaction.fire(now):
            times.append(round(now - 1.0, 3))
    assert times[:5] == [T1, 1.5, 3.5, 7.5, 11.5]  # G doubles up to T2 = 4 s
    assert all(b - a <= T2 + 1e-9 for a, b in zip(times, times[1:], strict=False))
    assert transaction.state == State.TERMINATED and timeouts == [transaction]  # Timer H


def test_ack_confirms_and_stops_retransmission() -> None:
    invite = request("INVITE")
    transaction = ServerTransaction(invite, PEER)
    transaction.respond(response_to(invite, 486, to_tag="t"), 0.0)
    assert transaction.on_retransmission(request("ACK"), 0.2) == []
    assert transaction.state == State.CONFIRMED
    assert transaction.fire(transaction.deadline) == []
    assert transaction.state == State.TERMINATED


def test_non_invite_server_answers_retransmissions_then_expires() -> None:
    bye = request("BYE")
    transaction = ServerTransaction(bye, PEER)
    transaction.respond(response_to(bye, 200), 0.0)
    assert len(transaction.on_retransmission(bye, 1.0)) == 1
    transaction.fire(64 * T1)
    assert transaction.state == State.TERMINATED


def test_invite_client_retransmits_then_times_out() -> None:
    timed_out: list[bool] = []
    transaction = ClientTransaction(
        request("INVITE"), PEER, lambda r: None, lambda: timed_out.append(True)
    )
    transaction.start(0.0)
    sent = []
    while not transaction.done:
        now = transaction.deadline
        if transaction.fire(now):
            sent.append(now)
    assert sent[:4] == [0.5, 1.5, 3.5, 7.5] and timed_out == [True]


def test_invite_client_acks_non_2xx_and_stops_on_provisional() -> None:
    invite = request("INVITE")
    got: list[int] = []
    transaction = ClientTransaction(invite, PEER, lambda r: got.append(r.status), lambda: None)
    transaction.start(0.0)
    transaction.on_message(response_to(invite, 180, to_tag="x"), 0.2)
    assert transaction.fire(10.0) == []  # no retransmission while proceeding
    final = response_to(invite, 486, to_tag="x")
    (ack,) = transaction.on_message(final, 1.0)
    parsed = parse_message(ack.data)
    assert isinstance(parsed, SipRequest) and parsed.method == "ACK"
    assert parsed.cseq == (1, "ACK") and "tag=x" in (parsed.headers.get("To") or "")
    assert len(transaction.on_message(final, 1.5)) == 1  # a resent 486 is ACKed again
    assert got == [180, 486]


def test_non_invite_client_caps_interval_at_t2() -> None:
    transaction = ClientTransaction(request("OPTIONS"), PEER, lambda r: None, lambda: None)
    transaction.start(0.0)
    intervals = []
    last = 0.0
    for _ in range(8):
        now = transaction.deadline
        transaction.fire(now)
        intervals.append(round(now - last, 3))
        last = now
    assert intervals[:5] == [0.5, 1.0, 2.0, 4.0, 4.0]
    final = SipResponse(status=200)
    transaction.on_message(final, last)
    assert transaction.state == State.COMPLETED


def test_reliable_invite_server_sends_the_final_response_once_then_waits_for_ack() -> None:
    invite = request("INVITE")
    timeouts: list[ServerTransaction] = []
    transaction = ServerTransaction(invite, PEER, timeouts.append, reliable=True)
    assert len(transaction.respond(response_to(invite, 200, to_tag="t"), 1.0)) == 1
    assert transaction.deadline == 1.0 + 64 * T1  # no Timer G: only Timer H
    assert transaction.fire(transaction.deadline) == []
    assert transaction.state == State.TERMINATED and timeouts == [transaction]


def test_reliable_ack_and_non_invite_end_at_once() -> None:
    invite = request("INVITE")
    transaction = ServerTransaction(invite, PEER, reliable=True)
    transaction.respond(response_to(invite, 486, to_tag="t"), 0.0)
    transaction.on_retransmission(request("ACK"), 2.0)
    assert transaction.state == State.CONFIRMED and transaction.deadline == 2.0  # Timer I = 0
    bye = ServerTransaction(request("BYE"), PEER, reliable=True)
    bye.respond(response_to(bye.request, 200), 3.0)
    assert bye.deadline == 3.0  # Timer J = 0
    bye.fire(3.0)
    assert bye.state == State.TERMINATED


def test_reliable_client_does_not_retransmit_but_still_times_out() -> None:
    timeouts: list[bool] = []
    client = ClientTransaction(
        request("INVITE"), PEER, lambda r: None, lambda: timeouts.append(True), reliable=True
    )
    assert len(client.start(0.0)) == 1
    assert client.deadline == 64 * T1  # Timer B only: no Timer A
    assert client.fire(client.deadline) == [] and timeouts == [True]


def test_reliable_client_ends_at_once_after_a_final_response() -> None:
    invite = request("INVITE")
    client = ClientTransaction(invite, PEER, lambda r: None, lambda: None, reliable=True)
    client.start(0.0)
    sends = client.on_message(response_to(invite, 486, to_tag="t"), 1.0)
    assert len(sends) == 1  # the ACK
    assert client.deadline == 1.0  # Timer D = 0
    client.fire(1.0)
    assert client.done
