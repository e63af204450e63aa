"""The torture corpus against the parser and the request rules, without sockets.

``tests/gateway/test_sip_torture.py`` sends the same messages to a running trunkline.
"""

from __future__ import annotations

import pytest

from tests.sip.torture_corpus import CORPUS, DIRECTORY, TortureCase
from trunkline.gateway.sip.message import (
    MalformedRequest,
    SipParseError,
    SipRequest,
    SipResponse,
    check_request,
    parse_message,
)
from trunkline.gateway.sip.request_rules import refusal_for


def test_every_message_has_an_expected_answer_and_every_answer_a_message() -> None:
    on_disk = sorted(path.stem for path in DIRECTORY.glob("*.sip"))
    assert on_disk == sorted(case.name for case in CORPUS)
    # RFC 4475 §3: 13 valid, 19 invalid, 1 transaction-layer, 15 application-layer and
    # 1 backward-compatibility message.
    assert len(CORPUS) == 49
    for case in CORPUS:
        head = case.data.partition(b"\r\n\r\n")[0]
        assert b"\n" not in head.replace(b"\r\n", b""), f"{case.name}: bare LF in the headers"


def answer_without_sockets(case: TortureCase) -> int | None:
    """What the parser and the request rules alone say: a refusal's status, 0 when the
    request goes on to be served, None for what gets no answer."""
    try:
        message = parse_message(case.data)
    except MalformedRequest as exc:
        return exc.status
    except SipParseError:
        return None
    if isinstance(message, SipResponse):
        return None
    assert isinstance(message, SipRequest)
    try:
        check_request(message)
    except SipParseError:
        return 400
    refusal = refusal_for(message)
    return refusal.status if refusal is not None else 0


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.name)
def test_the_parser_and_request_rules_classify_each_message(case: TortureCase) -> None:
    answer = answer_without_sockets(case)
    if case.answer is None:
        assert answer is None
        parsed = not case.dropped
        if parsed:  # a response nobody asked for: it parses, and is ignored
            assert isinstance(parse_message(case.data), SipResponse)
    elif case.answer in (400, 505, 415, 416, 420, 406, 483):
        assert answer == case.answer
    else:  # served: answered by the endpoint or the call flow
        assert answer == 0
