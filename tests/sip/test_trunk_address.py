"""Trunk addresses: which transport, port and Request-URI each form means."""

from __future__ import annotations

import pytest

from trunkline.gateway.sip.trunk_address import Trunk, TrunkAddressError


@pytest.mark.parametrize(
    ("address", "trunk", "uri"),
    [
        (
            "pstn.example.com",
            Trunk("pstn.example.com", 5060, "UDP", False),
            "sip:+1@pstn.example.com",
        ),
        ("sip:10.0.0.1:5080", Trunk("10.0.0.1", 5080, "UDP", False), "sip:+1@10.0.0.1:5080"),
        (
            "sips:pstn.example.com",
            Trunk("pstn.example.com", 5061, "TLS", True),
            "sips:+1@pstn.example.com",
        ),
        (
            "10.0.0.1;transport=TLS",
            Trunk("10.0.0.1", 5061, "TLS", False),
            "sip:+1@10.0.0.1;transport=tls",
        ),
        (
            "pstn.example.com:5070;transport=tcp",
            Trunk("pstn.example.com", 5070, "TCP", False),
            "sip:+1@pstn.example.com:5070;transport=tcp",
        ),
        (
            "[2001:db8::1]:5062",
            Trunk("2001:db8::1", 5062, "UDP", False),
            "sip:+1@[2001:db8::1]:5062",
        ),
    ],
)
def test_trunk_addresses_name_their_transport_and_port(
    address: str, trunk: Trunk, uri: str
) -> None:
    assert Trunk.parse(address) == trunk
    assert trunk.request_uri("+1") == uri


@pytest.mark.parametrize(
    "address", ["host;transport=sctp", "sips:host;transport=udp", "host:0", "", "host:port"]
)
def test_unusable_trunk_addresses_are_refused(address: str) -> None:
    with pytest.raises(TrunkAddressError, match="bad trunk address"):
        Trunk.parse(address)
