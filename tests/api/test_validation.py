"""The validation core on its own: schema subset, URL policy, call budget arithmetic."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.config import Settings, settings_from
from trunkline.control_api.errors import ApiError
from trunkline.control_api.schema import (
    canonical_uuid,
    obj,
    parse_query_value,
    string,
    validate,
)
from trunkline.control_api.shapes import E164, TRUNK_ADDRESS
from trunkline.control_api.urls import check_url
from trunkline.control_api.usage import CallLimits, Usage
from trunkline.storage.models import utcnow

BODY = obj(
    {
        "name": string(min_length=1, max_length=5),
        "kind": string(enum=("a", "b"), nullable=True),
        "nested": obj({"flag": {"type": "boolean"}}, required=("flag",)),
    },
    required=("name",),
)


def detail(value: Any, schema: dict[str, Any] = BODY) -> str:
    with pytest.raises(ApiError) as info:
        validate(value, schema)
    assert info.value.status == 422
    return str(info.value.detail)


def test_schema_messages_name_the_field() -> None:
    assert detail({}) == "name is required"
    assert detail({"name": ""}) == "name: must be at least 1 characters"
    assert detail({"name": "toolong"}) == "name: must be at most 5 characters"
    assert detail({"name": 3}) == "name: expected a string"
    assert detail({"name": "x", "kind": "c"}) == 'kind: must be one of "a", "b"'
    assert detail({"name": "x", "extra": 1}) == "extra: unknown field"
    assert detail({"name": "x", "nested": {}}) == "nested.flag is required"
    assert detail({"name": "x", "nested": {"flag": 1}}) == "nested.flag: expected a boolean"
    assert (
        detail({"name": "x", "nested": {"flag": True, "more": 1}}) == "nested.more: unknown field"
    )
    assert detail([]) == "body: expected an object"


def test_schema_accepts_valid_values_and_null_where_allowed() -> None:
    validate({"name": "x", "kind": None, "nested": {"flag": False}}, BODY)
    validate({"name": "abcde", "kind": "b"}, BODY)


def test_booleans_are_not_integers() -> None:
    schema = {"type": "integer", "minimum": 0}
    validate(0, schema)
    assert detail(True, schema) == "body: expected an integer"


@pytest.mark.parametrize(
    ("raw", "expected"), [("true", True), ("FALSE", False), ("1", True), ("0", False)]
)
def test_query_booleans(raw: str, expected: bool) -> None:
    assert parse_query_value(raw, {"type": "boolean"}, "is_read") is expected


def test_query_integers_are_bounded_before_conversion() -> None:
    schema = {"type": "integer", "minimum": 1, "maximum": 200}
    assert parse_query_value(" 7 ", schema, "limit") == 7
    for raw, message in [
        ("1e3", "limit: expected an integer"),
        ("9" * 40, "limit: expected an integer"),
        ("0", "limit: must be at least 1"),
    ]:
        with pytest.raises(ApiError, match=message):
            parse_query_value(raw, schema, "limit")


def test_canonical_uuid() -> None:
    assert canonical_uuid("0F8FAD5B-D9CB-469F-A165-70867728950E") == (
        "0f8fad5b-d9cb-469f-a165-70867728950e"
    )
    for bad in ("", "0f8fad5bd9cb469fa16570867728950e", "{0f8fad5b-d9cb-469f-a165-70867728950e}"):
        assert canonical_uuid(bad) is None


@pytest.mark.parametrize("number", ["+14155550100", "+442071234567", "+12", "+123456789012345"])
def test_e164_accepts(number: str) -> None:
    validate(number, E164)


@pytest.mark.parametrize(
    "number", ["14155550100", "+04155550100", "+1", "+1234567890123456", "+1 415 555", "+1415\n"]
)
def test_e164_rejects(number: str) -> None:
    with pytest.raises(ApiError, match="E.164"):
        validate(number, E164, "to_number")


@pytest.mark.parametrize(
    "address",
    [
        "sip.example.com",
        "sip.example.com:5080",
        "192.0.2.10",
        "[2001:db8::1]:5060",
        "sip:trunk.example.com",
        "sips:trunk.example.com:5061",
        "192.0.2.10;transport=tls",
        "trunk.example.com:5070;transport=tcp",
    ],
)
def test_trunk_address_accepts(address: str) -> None:
    validate(address, TRUNK_ADDRESS)


@pytest.mark.parametrize(
    "address",
    [
        "tel:trunk.example.com",
        "bad host",
        "-lead.example.com",
        "a..b",
        "host:99999999",
        "host;transport=sctp",
        "sips:host;maddr=evil",
    ],
)
def test_trunk_address_rejects(address: str) -> None:
    with pytest.raises(ApiError):
        validate(address, TRUNK_ADDRESS)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=20,
    )
)
@settings(max_examples=300, deadline=None)
def test_validate_never_raises_anything_but_api_error(value: Any) -> None:
    try:
        validate(value, BODY)
    except ApiError as exc:
        assert exc.status == 422 and isinstance(exc.detail, str)


# -- URL policy ---------------------------------------------------------------


def url_detail(url: str, kind: str = "websocket", **overrides: Any) -> str:
    with pytest.raises(ApiError) as info:
        check_url(url, kind, settings_from(overrides), "u")
    return str(info.value.detail)


def test_secure_schemes_required_by_default() -> None:
    assert check_url("wss://agent.example.com/ws", "websocket", Settings(), "u")
    assert check_url("https://agent.example.com/h", "webhook", Settings(), "u")
    assert url_detail("ws://agent.example.com/ws") == (
        "u: must be a wss:// URL; ws:// is allowed with"
        " TRUNKLINE_ALLOW_INSECURE_URLS=1 or trunkline serve --dev"
    )
    assert url_detail("http://agent.example.com", "webhook") == (
        "u: must be a https:// URL; http:// is allowed with"
        " TRUNKLINE_ALLOW_INSECURE_URLS=1 or trunkline serve --dev"
    )
    assert url_detail("ftp://agent.example.com", "webhook") == "u: must be a https:// URL"
    insecure = Settings(allow_insecure_urls=True)
    assert check_url("ws://agent.example.com/ws", "websocket", insecure, "u")


def test_private_host_refusal_names_the_settings_that_allow_it() -> None:
    detail = url_detail("wss://127.0.0.1:9000/")
    assert "TRUNKLINE_ALLOW_PRIVATE_TARGETS=1 or trunkline serve --dev" in detail


def test_dev_mode_allows_insecure_and_private_agent_urls() -> None:
    dev = settings_from({"dev": "1"})
    assert dev.allow_insecure_urls and dev.allow_private_targets
    assert check_url("ws://127.0.0.1:9000", "websocket", dev, "u") == "ws://127.0.0.1:9000"
    assert check_url("http://localhost:8000/h", "webhook", dev, "u") == "http://localhost:8000/h"
    assert not Settings().allow_insecure_urls and not Settings().allow_private_targets


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("wss://", "must name a host"),
        ("wss://user:pw@agent.example.com", "credentials"),
        ("wss://agent.example.com/ws#frag", "fragment"),
        ("wss://agent.example.com:0/", "port"),
        ("wss://agent.example.com:99999/", "not a valid URL"),
        ("wss://[::1", "not a valid URL"),
        ("wss://agent.example.com/a b", "whitespace"),
        ("wss://agent.example.com/" + "a" * 2048, "at most 2048"),
    ],
)
def test_malformed_urls(url: str, message: str) -> None:
    assert message in url_detail(url)


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "[::1]",
        "[fc00::1]",
        "[fe80::1]",
        "[::ffff:127.0.0.1]",
        "localhost",
        "api.localhost",
        "0.0.0.0",
    ],
)
def test_private_hosts_refused_unless_allowed(host: str) -> None:
    url = f"wss://{host}/ws"
    assert "private" in url_detail(url)
    assert check_url(url, "websocket", Settings(allow_private_targets=True), "u") == url


@pytest.mark.parametrize(
    "host", ["2130706433", "017700000001", "0x7f000001", "0x7f.1", "127.1", "127.0.1", "0177.0.0.1"]
)
def test_numeric_hosts_other_than_dotted_quads_are_refused_even_when_private_is_allowed(
    host: str,
) -> None:
    url = f"https://{host}/hook"
    expected = "u: a numeric host must be a dotted-quad IPv4 address"
    assert url_detail(url, "webhook") == expected
    assert url_detail(url, "webhook", allow_private_targets=True) == expected


@pytest.mark.parametrize(
    "host",
    [
        "[::127.0.0.1]",  # IPv4-compatible
        "[::ffff:7f00:1]",  # IPv4-mapped, hex spelling
        "[64:ff9b::a9fe:a9fe]",  # NAT64 of 169.254.169.254
        "[64:ff9b:1::a00:1]",  # local-use NAT64
        "[2002:7f00:1::]",  # 6to4 of 127.0.0.1
        "[2001:0:4136:e378:8000:63bf:80ff:fffe]",  # Teredo
    ],
)
def test_ipv6_forms_embedding_ipv4_are_refused_unless_private_is_allowed(host: str) -> None:
    url = f"https://{host}/hook"
    assert "private, loopback and link-local hosts are not allowed" in url_detail(url, "webhook")
    assert check_url(url, "webhook", Settings(allow_private_targets=True), "u") == url


def test_public_addresses_and_names_still_pass() -> None:
    for url in ("https://8.8.8.8/h", "https://[2606:4700::1111]/h", "https://2130706433.example/h"):
        assert check_url(url, "webhook", Settings(), "u") == url


# -- call budget ----------------------------------------------------------------


def test_usage_rounds_minutes_up_and_reports_remaining() -> None:
    usage = Usage(calls_used=3, seconds_used=61.0, oldest_call_at=None, limits=CallLimits(10, 5))
    assert usage.as_json() == {
        "calls_used": 3,
        "calls_remaining": 7,
        "calls_limit": 10,
        "minutes_used": 2,
        "minutes_remaining": 3,
        "minutes_limit": 5,
    }
    assert not usage.exhausted
    assert replace(usage, calls_used=10).exhausted
    assert replace(usage, seconds_used=241.0).exhausted
    assert replace(usage, calls_used=12).as_json()["calls_remaining"] == 0


def test_retry_after_is_when_the_oldest_call_leaves_the_window() -> None:
    now = utcnow()
    usage = Usage(1, 0.0, now - timedelta(hours=23), CallLimits(1, 10, 86_400))
    assert 3595 <= usage.retry_after_seconds(now) <= 3600
    assert Usage(1, 0.0, None, CallLimits()).retry_after_seconds(now) == 1
