"""The inbound dialog, driven directly: responses to the INVITE, the BYE, and its identity."""

from __future__ import annotations

from trunkline.gateway.sip.dialog import InboundDialog, remote_target_of
from trunkline.gateway.sip.dialog_guard import Verdict, check_in_dialog
from trunkline.gateway.sip.message import Address, SipRequest, SipResponse, parse_message
from trunkline.gateway.sip.transaction import ServerTransaction

CARRIER = ("198.51.100.7", 5060)
CONTACT = ("198.51.100.8", 5070)
ROUTES = ["<sip:proxy1.example.com;lr>", "<sip:proxy2.example.com;lr>"]
SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"


def invite(*, contact: str | None = "<sip:carrier@198.51.100.8:5070>") -> SipRequest:
    request = SipRequest(method="INVITE", uri="sip:+15550100001@192.0.2.1")
    request.headers.add("Via", "SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKinv1")
    for route in ROUTES:
        request.headers.add("Record-Route", route)
    request.headers.add("From", "<sip:+14155550123@198.51.100.7>;tag=theirs9")
    request.headers.add("To", "<sip:+15550100001@192.0.2.1>")
    request.headers.add("Call-ID", "abc@carrier")
    request.headers.add("CSeq", "7 INVITE")
    if contact is not None:
        request.headers.add("Contact", contact)
    return request


def dialog(request: SipRequest | None = None) -> InboundDialog:
    request = request or invite()
    return InboundDialog.accept(ServerTransaction(request, CARRIER), CARRIER)


def reparse(message: SipRequest | SipResponse) -> SipRequest | SipResponse:
    """What the far end sees: the serialized message parsed again."""
    return parse_message(message.serialize())


def to_tag(response: SipResponse) -> str | None:
    return Address.parse(response.headers.get("To") or "").tag


def test_the_dialog_keeps_the_invites_source_contact_and_route_set() -> None:
    d = dialog()
    assert d.source == CARRIER
    assert d.remote_target == CONTACT
    assert d.route_set == ROUTES
    assert d.remote_from == "<sip:+14155550123@198.51.100.7>;tag=theirs9"
    assert d.local_to == f"<sip:+15550100001@192.0.2.1>;tag={d.local_tag}"
    assert len(d.local_tag) == 16
    assert dialog().local_tag != d.local_tag


def test_a_contact_that_is_not_a_literal_address_leaves_the_source_as_target() -> None:
    assert remote_target_of(invite(contact="<sip:carrier@pbx.example.com>"), CARRIER) == CARRIER
    assert remote_target_of(invite(contact=None), CARRIER) == CARRIER
    assert remote_target_of(invite(contact="<sip:c@198.51.100.9>"), CARRIER) == (
        "198.51.100.9",
        5060,
    )


def test_ringing_and_the_200_ok_carry_our_tag_routes_contact_and_sdp() -> None:
    d = dialog()
    ringing = reparse(d.provisional(180))
    assert isinstance(ringing, SipResponse)
    assert ringing.status == 180 and to_tag(ringing) == d.local_tag
    ok = reparse(d.answer(SDP, "<sip:trunkline@192.0.2.1:5060>"))
    assert isinstance(ok, SipResponse)
    assert ok.status == 200 and to_tag(ok) == d.local_tag
    assert ok.headers.get_all("Record-Route") == ROUTES
    assert ok.headers.get("Contact") == "<sip:trunkline@192.0.2.1:5060>"
    assert ok.headers.get("Content-Type") == "application/sdp"
    assert ok.body == SDP
    assert ok.call_id == "abc@carrier" and ok.cseq == (7, "INVITE")


def test_a_rejection_carries_extra_headers_and_a_reason() -> None:
    d = dialog()
    busy = reparse(d.reject(503, Retry_After="30"))
    assert isinstance(busy, SipResponse)
    assert busy.status == 503 and to_tag(busy) == d.local_tag
    assert busy.headers.get("Retry-After") == "30"
    declined = d.reject(480, "Agent Unavailable")
    assert (declined.status, declined.reason) == (480, "Agent Unavailable")
    assert declined.headers.get("Retry-After") is None


def test_each_bye_goes_through_the_route_set_with_the_next_cseq() -> None:
    d = dialog()
    first = reparse(d.bye(("192.0.2.1", 5060)))
    second = reparse(d.bye(("192.0.2.1", 5060)))
    assert isinstance(first, SipRequest) and isinstance(second, SipRequest)
    assert first.method == "BYE" and first.uri == "sip:carrier@198.51.100.8:5070"
    assert first.headers.get_all("Route") == ROUTES
    assert first.headers.get("From") == d.local_to
    assert first.headers.get("To") == d.remote_from
    assert first.call_id == "abc@carrier"
    assert first.top_via.branch.startswith("z9hG4bK")
    assert first.top_via.branch != second.top_via.branch
    assert second.cseq == (first.cseq[0] + 1, "BYE")


def test_without_a_contact_the_bye_goes_to_the_source() -> None:
    bye = dialog(invite(contact=None)).bye(("192.0.2.1", 5060))
    assert bye.uri == "sip:198.51.100.7:5060"


def test_its_identity_is_both_tags_and_the_far_ends_addresses() -> None:
    d = dialog()
    identity = d.identity
    assert identity.local_tag == d.local_tag and identity.remote_tag == "theirs9"
    assert identity.peers == frozenset({CARRIER, CONTACT})
    bye = SipRequest(method="BYE", uri="sip:trunkline@192.0.2.1")
    bye.headers.add("From", "<sip:+14155550123@198.51.100.7>;tag=theirs9")
    bye.headers.add("To", f"<sip:+15550100001@192.0.2.1>;tag={d.local_tag}")
    assert check_in_dialog(bye, CONTACT, identity, trusted=False) is Verdict.ACCEPT


def test_a_from_header_without_a_tag_gives_no_remote_tag() -> None:
    request = invite()
    request.headers.set("From", "<sip:+14155550123@198.51.100.7>")
    assert dialog(request).identity.remote_tag is None


PROXY = "<sip:10.0.0.5:5080;lr;ftag=theirs9>"


def test_a_record_routing_proxy_is_the_first_hop_of_our_bye() -> None:
    request = invite()
    request.headers.remove("Record-Route")
    request.headers.add("Record-Route", PROXY)
    d = dialog(request)
    assert d.first_hop == ("10.0.0.5", 5080)
    bye = reparse(d.bye(("192.0.2.1", 5060)))
    assert isinstance(bye, SipRequest)
    assert bye.uri == "sip:carrier@198.51.100.8:5070"  # still the far end's Contact
    assert bye.headers.get_all("Route") == [PROXY]


def test_without_a_route_set_the_first_hop_is_the_remote_target() -> None:
    request = invite()
    request.headers.remove("Record-Route")
    assert dialog(request).first_hop == CONTACT


def test_a_route_named_by_host_name_is_reached_where_the_invite_came_from() -> None:
    assert dialog().first_hop == CARRIER  # proxy1.example.com sent us the INVITE


def test_a_strict_router_gets_the_bye_with_the_remote_target_as_the_last_route() -> None:
    request = invite()
    request.headers.remove("Record-Route")
    request.headers.add("Record-Route", "<sip:10.0.0.5:5080>")
    request.headers.add("Record-Route", "<sip:10.0.0.6;lr>")
    d = dialog(request)
    bye = reparse(d.bye(("192.0.2.1", 5060)))
    assert isinstance(bye, SipRequest)
    assert bye.uri == "sip:10.0.0.5:5080"
    assert bye.headers.get_all("Route") == ["<sip:10.0.0.6;lr>", "<sip:carrier@198.51.100.8:5070>"]
    assert d.first_hop == ("10.0.0.5", 5080)
