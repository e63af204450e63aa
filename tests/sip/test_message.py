"""The SIP parser: the RFC 3261 grammar, torture cases, and fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.gateway.sip.headers import split_list
from trunkline.gateway.sip.message import (
    Address,
    MalformedRequest,
    SipParseError,
    SipRequest,
    SipResponse,
    SipUri,
    check_request,
    parse_message,
    response_to,
)

INVITE = (
    b"INVITE sip:+15550100001@trunk.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"v: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKnashds8\r\n"
    b"Max-Forwards: 70\r\n"
    b'f: "Alice, the caller" <sip:+14155550123@carrier.example>;tag=1928301774\r\n'
    b"t: <sip:+15550100001@trunk.example.com>\r\n"
    b"i: a84b4c76e66710@pc33.atlanta.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"m: <sip:alice@10.0.0.1:5060>\r\n"
    b"Allow: INVITE, ACK,\r\n BYE, CANCEL\r\n"
    b"c: application/sdp\r\n"
    b"l: 4\r\n"
    b"\r\n"
    b"v=0\r\ntrailing garbage beyond Content-Length"
)


def test_compact_forms_folding_and_lists() -> None:
    message = parse_message(INVITE)
    assert isinstance(message, SipRequest)
    assert (message.method, message.uri) == ("INVITE", "sip:+15550100001@trunk.example.com")
    assert message.call_id == "a84b4c76e66710@pc33.atlanta.com"
    assert message.cseq == (314159, "INVITE")
    assert len(message.headers.get_all("Via")) == 2
    assert message.top_via.branch == "z9hG4bK776asdhds" and message.top_via.port == 5060
    assert message.headers.get_all("Allow") == ["INVITE", "ACK", "BYE", "CANCEL"]
    sender = Address.parse(message.headers.get("From") or "")
    assert sender.display_name == "Alice, the caller" and sender.tag == "1928301774"
    assert SipUri.parse(sender.uri).user == "+14155550123"
    assert message.body == b"v=0\r"[:4]
    check_request(message)


def test_round_trip_keeps_meaning() -> None:
    message = parse_message(INVITE)
    again = parse_message(message.serialize())
    assert isinstance(again, SipRequest)
    assert [n for n, _ in again.headers.items()] == [n for n, _ in message.headers.items()]
    assert again.call_id == message.call_id and again.body == message.body
    assert again.headers.get("Content-Length") == "4"


def test_responses_copy_dialog_headers_and_add_a_tag() -> None:
    request = parse_message(INVITE)
    assert isinstance(request, SipRequest)
    response = response_to(request, 180, to_tag="xyz")
    parsed = parse_message(response.serialize())
    assert isinstance(parsed, SipResponse) and (parsed.status, parsed.reason) == (180, "Ringing")
    assert Address.parse(parsed.headers.get("To") or "").tag == "xyz"
    assert parsed.headers.get_all("Via") == request.headers.get_all("Via")
    assert response_to(request, 100).headers.get("To") == request.headers.get("To")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0",  # no blank line
        b"INVITE sip:a@b SIP/3.0\r\n\r\n",
        b"INVITE  SIP/2.0\r\n\r\n",
        b"SIP/2.0 99 Low\r\n\r\n",
        b"SIP/2.0 abc OK\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0\r\nNo colon here\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 10\r\n\r\nshort",
        b"INVITE sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0\r\nContent-Length: x\r\n\r\n",
        b"\xff\xfe\xfd\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0\r\n" + b"X-A: b\r\n" * 200 + b"\r\n",
        b"INVITE sip:a@b SIP/2.0\r\n\r\n" + b"x" * 70_000,
    ],
)
def test_malformed_messages_are_parse_errors(data: bytes) -> None:
    with pytest.raises(SipParseError):
        parse_message(data)


@pytest.mark.parametrize("missing", ["Via", "From", "To", "Call-ID", "CSeq"])
def test_requests_without_mandatory_headers_are_refused(missing: str) -> None:
    request = parse_message(INVITE)
    assert isinstance(request, SipRequest)
    request.headers.remove(missing)
    with pytest.raises(SipParseError):
        check_request(request)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("f", "<sip:+14155550123@carrier.example;tag=1928301774"),  # no closing >
        ("t", "<sip:+15550100001@trunk.example.com"),
        ("f", '"Alice <sip:+14155550123@carrier.example>;tag=1'),  # unterminated quote
        ("t", "no uri here"),
    ],
)
def test_requests_with_unparseable_from_or_to_are_refused(header: str, value: str) -> None:
    lines = INVITE.split(b"\r\n")
    index = next(i for i, line in enumerate(lines) if line.startswith(header.encode() + b":"))
    lines[index] = f"{header}: {value}".encode()
    request = parse_message(b"\r\n".join(lines))
    assert isinstance(request, SipRequest)
    with pytest.raises(SipParseError):
        check_request(request)


def test_a_quoted_display_name_may_hold_angle_brackets() -> None:
    address = Address.parse('"Bob <the boss>" <sip:bob@example.com>;tag=a1')
    assert (address.display_name, address.uri, address.tag) == (
        "Bob <the boss>",
        "sip:bob@example.com",
        "a1",
    )


def test_a_to_tag_written_with_spaces_is_kept_and_not_doubled() -> None:
    request = parse_message(
        INVITE.replace(b"t: <sip:+15550100001@trunk.example.com>", b"t: <sip:x@y> ; tag = abc")
    )
    assert isinstance(request, SipRequest)
    to = response_to(request, 200, to_tag="new").headers.get("To") or ""
    assert Address.parse(to).tag == "abc"
    assert to.lower().count("tag") == 1


def test_cseq_method_must_match() -> None:
    request = parse_message(INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: 1 BYE"))
    assert isinstance(request, SipRequest)
    with pytest.raises(SipParseError):
        check_request(request)


def test_list_splitting_respects_quotes_and_brackets() -> None:
    value = '"Doe, John" <sip:j@x;a=1,2>, <sip:k@y>;q=0.5'
    assert split_list(value) == ['"Doe, John" <sip:j@x;a=1,2>', "<sip:k@y>;q=0.5"]


def test_uris() -> None:
    uri = SipUri.parse("sip:%2B1555@[2001:db8::1]:5080;transport=udp?subject=x")
    assert (uri.user, uri.host, uri.port, uri.params) == (
        "+1555",
        "2001:db8::1",
        5080,
        {"transport": "udp"},
    )
    assert SipUri.parse("tel:+15550100;phone-context=x").user == "+15550100"
    with pytest.raises(SipParseError):
        SipUri.parse("http://example.com")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_never_crash(data: bytes) -> None:
    try:
        message = parse_message(data)
        if isinstance(message, SipRequest):
            check_request(message)
    except SipParseError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_invites_never_crash(data: st.DataObject) -> None:
    raw = bytearray(INVITE)
    for _ in range(data.draw(st.integers(1, 12))):
        position = data.draw(st.integers(0, len(raw) - 1))
        action = data.draw(st.integers(0, 2))
        if action == 0:
            raw[position] = data.draw(st.integers(0, 255))
        elif action == 1:
            del raw[position]
        else:
            raw.insert(position, data.draw(st.sampled_from(b':;,<>"\r\n \t')))
    try:
        message = parse_message(bytes(raw))
        if isinstance(message, SipRequest):
            check_request(message)
            message.serialize()
    except SipParseError:
        pass


@pytest.mark.parametrize(
    ("value", "sent_by"),
    [
        ("SIP / 2.0 / UDP 192.0.2.2;branch=390skdjuw", ("UDP", "192.0.2.2", None, "390skdjuw")),
        (
            "SIP/2.0/TCP spindle.example.com ;branch=z9hG4bK9ikj8",
            ("TCP", "spindle.example.com", None, "z9hG4bK9ikj8"),
        ),
        (
            "SIP  /2.0/UDP 192.0.2.1 : 5070 ; branch = z9hG4bKa",
            ("UDP", "192.0.2.1", 5070, "z9hG4bKa"),
        ),
    ],
)
def test_via_with_whitespace_around_its_separators_is_accepted(
    value: str, sent_by: tuple[str, str, int | None, str]
) -> None:
    request = parse_message(
        INVITE.replace(b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds;rport", value.encode())
    )
    assert isinstance(request, SipRequest)
    check_request(request)
    via = request.top_via
    assert (via.transport, via.host, via.port, via.branch) == sent_by


OPTIONS_HEAD = (
    "OPTIONS sip:+15550100001@192.0.2.1 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKgrammar\r\n"
    "From: <sip:carrier@192.0.2.10>;tag=f1\r\n"
    "To: <sip:+15550100001@192.0.2.1>\r\n"
    "Call-ID: grammar@192.0.2.10\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Max-Forwards: 70\r\n"
)


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (OPTIONS_HEAD.replace("SIP/2.0\r\n", "SIP/7.0\r\n", 1) + "\r\n", 505),
        (OPTIONS_HEAD.replace("SIP/2.0\r\n", "SIP/two\r\n", 1) + "\r\n", 400),
        (OPTIONS_HEAD.replace("OPTIONS sip:", "OPTIONS  sip:", 1) + "\r\n", 400),  # two SP
        (OPTIONS_HEAD.replace(" SIP/2.0\r\n", " SIP/2.0 \r\n", 1) + "\r\n", 400),  # trailing SP
        (OPTIONS_HEAD.replace("@192.0.2.1 SIP", "@192.0.2.1; lr SIP", 1) + "\r\n", 400),  # LWS
        (
            OPTIONS_HEAD.replace(
                "sip:+15550100001@192.0.2.1 SIP", "<sip:+15550100001@192.0.2.1> SIP", 1
            )
            + "\r\n",
            400,
        ),
        (OPTIONS_HEAD + "Content-Length: 10\r\n\r\nshort", 400),  # longer than the datagram
        (OPTIONS_HEAD + "Content-Length: -4\r\n\r\n", 400),
        (OPTIONS_HEAD + "Content-Length: 0\r\nContent-Length: 4\r\n\r\nbody", 400),
        (OPTIONS_HEAD + "this line has no colon\r\n\r\n", 400),
    ],
)
def test_requests_breaking_the_grammar_can_still_be_answered(data: str, status: int) -> None:
    with pytest.raises(MalformedRequest) as raised:
        parse_message(data.encode())
    assert raised.value.status == status
    assert raised.value.request.headers.get("Via") is not None  # the answer can be routed
    assert raised.value.request.call_id == "grammar@192.0.2.10"


def test_a_shorter_content_length_truncates_the_body_and_equal_duplicates_agree() -> None:
    data = OPTIONS_HEAD + "Content-Length: 4\r\nl: 4\r\n\r\nbodyand extra octets"
    request = parse_message(data.encode())
    assert request.body == b"body"


def test_a_response_breaking_the_grammar_is_a_plain_parse_error() -> None:
    with pytest.raises(SipParseError) as raised:
        parse_message(b"SIP/2.0 200 OK\r\nContent-Length: 9\r\n\r\nshort")
    assert not isinstance(raised.value, MalformedRequest)


@pytest.mark.parametrize("header", ["From", "To", "Call-ID", "CSeq", "Max-Forwards"])
def test_a_single_value_header_given_twice_is_refused(header: str) -> None:
    request = parse_message((OPTIONS_HEAD + "\r\n").encode())
    assert isinstance(request, SipRequest)
    check_request(request)
    request.headers.add(header, request.headers.get(header) or "")
    with pytest.raises(SipParseError, match=f"more than one {header}"):
        check_request(request)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Via", "SIP/2.0/UDP 192.0.2.10:5060;;branch=z9hG4bKx"),  # an empty parameter
        ("To", "<sip:+15550100001 @192.0.2.1>"),  # whitespace inside the addr-spec
        ("To", "< sip:+15550100001@192.0.2.1>"),
        ("From", "Bell, Alexander <sip:carrier@192.0.2.10>;tag=f1"),  # not tokens, not quoted
    ],
)
def test_header_values_breaking_the_grammar_are_refused(header: str, value: str) -> None:
    request = parse_message((OPTIONS_HEAD + "\r\n").encode())
    assert isinstance(request, SipRequest)
    request.headers.set(header, value)
    with pytest.raises(SipParseError):
        check_request(request)


def test_a_lower_via_that_does_not_parse_is_refused() -> None:
    request = parse_message((OPTIONS_HEAD + "Via: ;\r\n\r\n").encode())
    assert isinstance(request, SipRequest)
    with pytest.raises(SipParseError):
        check_request(request)


@pytest.mark.parametrize(
    "value",
    [
        "caller<sip:carrier@192.0.2.10>;tag=f1",  # no whitespace before <
        "J. O'Brien-Smith <sip:carrier@192.0.2.10>;tag=f1",
        "sip:carrier@192.0.2.10 ;tag=f1",  # whitespace before the semicolon
        '"Bell, Alexander" <sip:carrier@192.0.2.10>;tag=f1',
    ],
)
def test_addresses_the_grammar_allows_are_accepted(value: str) -> None:
    request = parse_message((OPTIONS_HEAD + "\r\n").encode())
    assert isinstance(request, SipRequest)
    request.headers.set("From", value)
    check_request(request)
    assert Address.parse(value).tag == "f1"
