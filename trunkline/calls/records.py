"""The stored shape of a new inbound call, and the call as an agent's ``start`` describes it."""

from __future__ import annotations

from trunkline.calls.owner_channel import owner_id
from trunkline.storage.models import Call, PhoneNumber


def normalise_e164(user: str | None) -> str | None:
    """The dialled number as E.164 (+ and digits), or None when it is not a phone number."""
    if not user:
        return None
    digits = "".join(c for c in user if c.isdigit())
    if not 6 <= len(digits) <= 15:
        return None
    if user.startswith("+"):
        return "+" + digits
    if len(digits) == 10:
        return "+1" + digits  # a national NANP number, as US carriers send them
    return "+" + digits


def inbound_call_record(number: PhoneNumber, remote: str | None, carrier_call_id: str) -> Call:
    """A new inbound call on ``number`` from ``remote`` (E.164 when it is a phone number)."""
    caller = normalise_e164(remote) or (remote or "anonymous")[:32]
    return Call.initiated(
        number,
        remote_phone_number=caller,
        direction="inbound",
        sip_call_id=carrier_call_id[:255],
        owner=owner_id(),
    )


def agent_custom_parameters(record: Call) -> dict[str, str]:
    """What a Twilio-persona agent finds in ``start.customParameters``."""
    inbound = record.direction == "inbound"
    return {
        "call_id": record.id,
        "from": record.remote_phone_number if inbound else record.local_phone_number,
        "to": record.local_phone_number if inbound else record.remote_phone_number,
        "direction": record.direction,
    }
