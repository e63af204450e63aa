"""Dialog matching: both tags, the far end's addresses, and CANCEL against its INVITE."""

from __future__ import annotations

from trunkline.gateway.sip.dialog_guard import (
    Dialog,
    Verdict,
    cancel_matches,
    check_in_dialog,
    tags_match,
)
from trunkline.gateway.sip.message import SipRequest

CARRIER = ("198.51.100.7", 5060)
CONTACT = ("198.51.100.8", 5070)
STRANGER = ("203.0.113.66", 5060)
DIALOG = Dialog(local_tag="ours123", remote_tag="theirs9", peers=frozenset({CARRIER, CONTACT}))


def request(
    method: str,
    *,
    from_tag: str | None = "theirs9",
    to_tag: str | None = "ours123",
    branch: str = "z9hG4bKaaa",
    cseq: int = 1,
    uri: str = "sip:+15550100001@192.0.2.1",
) -> SipRequest:
    message = SipRequest(method=method, uri=uri)
    message.headers.add("Via", f"SIP/2.0/UDP 198.51.100.7:5060;branch={branch}")
    from_header = "<sip:+14155550123@198.51.100.7>"
    message.headers.add("From", from_header + (f";tag={from_tag}" if from_tag else ""))
    to_header = "<sip:+15550100001@192.0.2.1>"
    message.headers.add("To", to_header + (f";tag={to_tag}" if to_tag else ""))
    message.headers.add("Call-ID", "abc@carrier")
    message.headers.add("CSeq", f"{cseq} {method}")
    return message


def test_both_tags_must_match() -> None:
    assert tags_match(request("BYE"), DIALOG)
    assert not tags_match(request("BYE", from_tag="other"), DIALOG)
    assert not tags_match(request("BYE", to_tag="other"), DIALOG)
    assert not tags_match(request("BYE", to_tag=None), DIALOG)
    assert not tags_match(request("BYE", from_tag=None), DIALOG)
    assert not tags_match(request("BYE", to_tag="OURS123"), DIALOG)


def test_a_dialog_without_the_far_ends_tag_matches_nothing() -> None:
    early = Dialog(local_tag="ours123", remote_tag=None, peers=frozenset({CARRIER}))
    assert not tags_match(request("BYE"), early)
    assert check_in_dialog(request("BYE"), CARRIER, early, trusted=True) is Verdict.WRONG_TAGS


def test_matching_requests_must_come_from_the_far_end_or_a_trusted_network() -> None:
    bye = request("BYE")
    assert check_in_dialog(bye, CARRIER, DIALOG, trusted=False) is Verdict.ACCEPT
    assert check_in_dialog(bye, CONTACT, DIALOG, trusted=False) is Verdict.ACCEPT
    assert check_in_dialog(bye, STRANGER, DIALOG, trusted=False) is Verdict.STRANGER
    assert check_in_dialog(bye, (CARRIER[0], 5999), DIALOG, trusted=False) is Verdict.STRANGER
    assert check_in_dialog(bye, STRANGER, DIALOG, trusted=True) is Verdict.ACCEPT


def test_wrong_tags_are_refused_before_the_source_is_considered() -> None:
    forged = request("INVITE", to_tag="guess")
    assert check_in_dialog(forged, CARRIER, DIALOG, trusted=True) is Verdict.WRONG_TAGS
    assert check_in_dialog(forged, STRANGER, DIALOG, trusted=False) is Verdict.WRONG_TAGS


def test_cancel_matches_only_its_invite_from_the_invites_source() -> None:
    invite = request("INVITE", to_tag=None)
    assert cancel_matches(request("CANCEL", to_tag=None), CARRIER, invite, CARRIER)
    assert not cancel_matches(request("CANCEL", to_tag=None), STRANGER, invite, CARRIER)
    assert not cancel_matches(request("CANCEL", to_tag=None), CONTACT, invite, CARRIER)
    for different in (
        request("CANCEL", to_tag=None, branch="z9hG4bKbbb"),
        request("CANCEL", to_tag=None, from_tag="other"),
        request("CANCEL", to_tag=None, cseq=2),
        request("CANCEL", to_tag=None, uri="sip:+15550100002@192.0.2.1"),
    ):
        assert not cancel_matches(different, CARRIER, invite, CARRIER)
