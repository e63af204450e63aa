"""Loading objects on behalf of a token, with the organisation and identity rules applied.

An object the token may not see (another organisation's, or another
identity's when the token is identity-scoped) is refused exactly like the
seed pages say for another organisation: 403 for a phone number named in the
path (seeds 001 and 003), 404 for everything else (texts, calls,
identities), so nothing leaks beyond what the seeds document.

An identity token may name only its own identity wherever a request names
one (``agent_handle``, ``agent_id``, ``inbound_routing`` targets): any other
reference is 403 whether or not such an identity exists, so a sibling's
handle can be neither used nor discovered.
"""

from __future__ import annotations

from trunkline.control_api.errors import ApiError
from trunkline.control_api.route_table import Ctx
from trunkline.control_api.schema import canonical_uuid
from trunkline.storage.models import AgentIdentity, Call, PhoneNumber

NUMBER_NOT_FOUND = "Phone number not found"
NUMBER_NOT_FOUND_OR_RELEASED = "Phone number not found or released"
NUMBER_FOREIGN = "Number does not belong to your organization"
NUMBER_OTHER_IDENTITY = "Number does not belong to this agent identity"
CALL_NOT_FOUND = "Call not found"
IDENTITY_NOT_FOUND = "Agent identity not found"
OTHER_IDENTITY = "Identity-scoped tokens can only name their own agent identity"


async def load_number(
    ctx: Ctx,
    phone_number_id: str,
    *,
    foreign_status: int = 403,
    allow_released: bool = True,
    not_found: str | None = None,
) -> PhoneNumber:
    """The number if the token may act on it.

    404 when it does not exist (or is released and ``allow_released`` is
    False); ``foreign_status`` when it belongs to another organisation or,
    for an identity token, to another identity.
    """
    missing = not_found or (NUMBER_NOT_FOUND if allow_released else NUMBER_NOT_FOUND_OR_RELEASED)
    number = await ctx.numbers.get_number(phone_number_id)
    if number is None:
        raise ApiError(404, missing)
    if number.organization_id != ctx.principal.organization_id:
        raise ApiError(foreign_status, NUMBER_FOREIGN if foreign_status == 403 else missing)
    if not ctx.principal.may_see_identity(number.agent_identity_id):
        raise ApiError(foreign_status, NUMBER_OTHER_IDENTITY if foreign_status == 403 else missing)
    if not allow_released and number.status == "released":
        raise ApiError(404, missing)
    return number


async def load_call(ctx: Ctx, call_id: str, phone_number_id: str | None = None) -> Call:
    """The call if the token may see it (and it is on ``phone_number_id`` when given), else 404."""
    record = await ctx.calls.get_call(call_id)
    if record is None or record.organization_id != ctx.principal.organization_id:
        raise ApiError(404, CALL_NOT_FOUND)
    if phone_number_id is not None and record.phone_number_id != phone_number_id:
        raise ApiError(404, CALL_NOT_FOUND)
    if not ctx.principal.is_admin:
        number = await ctx.numbers.get_number(record.phone_number_id)
        if number is None or not ctx.principal.may_see_identity(number.agent_identity_id):
            raise ApiError(404, CALL_NOT_FOUND)
    return record


async def find_identity(ctx: Ctx, reference: str) -> AgentIdentity | None:
    """An identity of the token's organisation by id or handle (leading ``@`` stripped)."""
    organization_id = ctx.principal.organization_id
    identity_id = canonical_uuid(reference)
    if identity_id is not None:
        identity = await ctx.identities.get_identity(identity_id)
        if identity is not None and identity.organization_id == organization_id:
            return identity
        return None
    handle = reference[1:] if reference.startswith("@") else reference
    if not handle:
        return None
    return await ctx.identities.get_identity_by_handle(organization_id, handle)


async def require_identity(ctx: Ctx, reference: str, field: str) -> AgentIdentity:
    """The identity ``reference`` names, if the token may name it.

    For an identity token anything but its own identity is 403 (existing or
    not); for an admin token an unknown identity is 404. Both name ``field``.
    """
    identity = await find_identity(ctx, reference)
    principal = ctx.principal
    if not principal.is_admin and (identity is None or identity.id != principal.agent_identity_id):
        raise ApiError(403, f"{OTHER_IDENTITY}: {field}")
    if identity is None:
        raise ApiError(404, f"{IDENTITY_NOT_FOUND}: {field}")
    return identity
