"""Twilio stream tokens and the single-use record, driven directly (no sockets)."""

from __future__ import annotations

import pytest

from trunkline.gateway.carriers.stream_tokens import (
    StreamTokenError,
    UsedStreams,
    check_stream_token,
    issue_stream_token,
)

SID = "CA" + "1" * 32


def test_a_token_checks_only_for_the_call_and_numbers_it_was_issued_for() -> None:
    token = issue_stream_token("auth", SID, "+15550100001", "+14155550123", 1_000)
    assert check_stream_token(token, "auth", SID, "+15550100001", "+14155550123", 999.5) == 1_000
    for args, reason in (
        (("auth", "CA" + "2" * 32, "+15550100001", "+14155550123", 999.0), "token_invalid"),
        (("auth", SID, "+15550100002", "+14155550123", 999.0), "token_invalid"),
        (("auth", SID, "+15550100001", "+14155550999", 999.0), "token_invalid"),
        (("other", SID, "+15550100001", "+14155550123", 999.0), "token_invalid"),
        (("auth", SID, "+15550100001", "+14155550123", 1_000.5), "token_expired"),
    ):
        with pytest.raises(StreamTokenError) as refused:
            check_stream_token(token, *args)  # type: ignore[arg-type]
        assert refused.value.reason == reason
    for bad in (None, "", "soon.abc", "1000", "9" * 13 + ".x", token.replace(".", ".A")):
        with pytest.raises(StreamTokenError):
            check_stream_token(bad, "auth", SID, "+15550100001", "+14155550123", 999.0)


def test_each_call_streams_once_while_its_token_lives_and_the_record_is_bounded() -> None:
    used = UsedStreams(limit=2)
    used.claim(SID, 100, now=50.0)
    with pytest.raises(StreamTokenError, match="already"):
        used.claim(SID, 100, now=60.0)
    used.claim("CA2", 110, now=60.0)
    with pytest.raises(StreamTokenError, match="too many"):
        used.claim("CA3", 120, now=70.0)  # full of live tokens: refused, nothing forgotten
    used.claim("CA3", 160, now=101.0)  # SID's token expired: its entry made room
    assert len(used) == 2
