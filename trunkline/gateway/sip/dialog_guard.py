"""Which requests may act on a live dialog, sans I/O.

A request that names a live Call-ID belongs to that dialog only when both tags
match it (RFC 3261 §12.2.2): its From-tag is the far end's tag and its To-tag
is ours. Otherwise it gets 481 and changes nothing. A matching request must
also come from the dialog's far end — the address its INVITE came from (or
went to) or its remote target — unless the source is a trusted carrier network;
any other source is a stranger and must authenticate like an INVITE would.

A CANCEL matches the pending INVITE only when it comes from where the INVITE
came from and repeats its Call-ID, From-tag, Request-URI, CSeq number and top
Via branch (§9.2).
"""

from __future__ import annotations

import enum
import hmac
from dataclasses import dataclass

from trunkline.gateway.sip.header_values import Address
from trunkline.gateway.sip.message import SipRequest
from trunkline.gateway.sip.parse_error import SipParseError

SipAddress = tuple[str, int]

# The reasons a request was refused, as counted in ``trunkline_sip_requests_refused``.
WRONG_TAGS = "dialog_mismatch"  # live Call-ID, wrong or missing tags: 481
STRANGER = "dialog_stranger"  # tags match, but from neither the far end nor a trusted network
CANCEL_MISMATCH = "cancel_mismatch"  # no pending INVITE from that source matches: 481
ACK_STRANGER = "ack_stranger"  # an ACK with wrong tags or not from the far end: dropped
FOREIGN_RETRANSMISSION = "foreign_retransmission"  # a transaction's branch from another source
NO_DIALOG = "no_dialog"  # an INVITE with a To tag (in a dialog) for no live dialog: 481
REFUSAL_REASONS = (
    WRONG_TAGS,
    STRANGER,
    CANCEL_MISMATCH,
    ACK_STRANGER,
    FOREIGN_RETRANSMISSION,
    NO_DIALOG,
)


class Verdict(enum.Enum):
    ACCEPT = "accept"
    WRONG_TAGS = "wrong_tags"
    STRANGER = "stranger"


@dataclass(frozen=True, slots=True)
class Dialog:
    """What identifies a dialog and its far end."""

    local_tag: str
    remote_tag: str | None  # None while the far end has not given one (no dialog yet)
    peers: frozenset[SipAddress]  # where the far end's requests come from


def _tag(request: SipRequest, header: str) -> str | None:
    value = request.headers.get(header)
    if value is None:
        return None
    try:
        return Address.parse(value).tag
    except SipParseError:
        return None


def _same(ours: str | None, theirs: str | None) -> bool:
    if not ours or not theirs:
        return False
    return hmac.compare_digest(ours.encode(), theirs.encode())


def tags_match(request: SipRequest, dialog: Dialog) -> bool:
    """The request's From-tag is the far end's and its To-tag is ours."""
    return _same(dialog.local_tag, _tag(request, "To")) and _same(
        dialog.remote_tag, _tag(request, "From")
    )


def check_in_dialog(
    request: SipRequest, source: SipAddress, dialog: Dialog, *, trusted: bool
) -> Verdict:
    """Whether an in-dialog request may act on ``dialog``."""
    if not tags_match(request, dialog):
        return Verdict.WRONG_TAGS
    if trusted or source in dialog.peers:
        return Verdict.ACCEPT
    return Verdict.STRANGER


def cancel_matches(
    cancel: SipRequest, source: SipAddress, invite: SipRequest, invite_source: SipAddress
) -> bool:
    """The CANCEL is for this INVITE and comes from where the INVITE came from (§9.2)."""
    if source != invite_source:
        return False
    try:
        same_transaction = (
            cancel.top_via.branch == invite.top_via.branch
            and cancel.call_id == invite.call_id
            and cancel.cseq[0] == invite.cseq[0]
        )
    except SipParseError:
        return False
    return (
        same_transaction
        and cancel.uri == invite.uri
        and _tag(cancel, "From") == _tag(invite, "From")
    )
