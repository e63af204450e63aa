"""The operator commands other than ``serve``: migrate, creating and listing orgs, identities,
numbers and tokens, signing keys (``calls tail`` is ``trunkline.calls_tail``).

Each command prints what it made; secrets (tokens, signing keys) are printed
once as the last word of the output and stored only hashed or sealed.
"""

from __future__ import annotations

import argparse
import re
import uuid
from datetime import datetime, timedelta

from trunkline import admin_lists, calls_tail
from trunkline.config import Settings
from trunkline.crypto import SecretBox, load_master_key
from trunkline.data_dir import secure_data_dir
from trunkline.storage import DuplicateHandle, open_repository
from trunkline.storage.models import ApiToken, utcnow
from trunkline.storage.repository import Repository
from trunkline.storage.stores import IdentityStore
from trunkline.tokens import issue_token, token_status
from trunkline.webhooks import new_signing_key

MAX_NAME_LENGTH = 200
MAX_TOKEN_LIFETIME = timedelta(days=3650)
LIST_PAGE = 500
_DURATION = re.compile(r"^(\d{1,9})([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class AdminError(Exception):
    """A command that cannot be carried out; the CLI prints it and exits 1."""


async def run_command(settings: Settings, args: argparse.Namespace) -> list[str]:
    _prepare_data_dir(settings)
    master_key = load_master_key(settings.secret_key, settings.data_dir)
    repository = await open_repository(settings.database_url, migrate=False)
    try:
        applied = await repository.migrate()
        if args.command == "migrate":
            if not applied:
                return ["schema is up to date"]
            return [f"applied migration {version}" for version in applied]
        return await _dispatch(repository, SecretBox(master_key), args)
    finally:
        await repository.close()


async def tail_calls(settings: Settings, args: argparse.Namespace, write: calls_tail.Write) -> int:
    """``calls tail``: the latest calls, then (``--follow``) each change until cancelled."""
    if args.lines < 0 or not 0.05 <= args.interval <= 3600:
        raise AdminError("--lines must not be negative and --interval must be 0.05-3600 seconds")
    _prepare_data_dir(settings)
    repository = await open_repository(settings.database_url)
    try:
        await calls_tail.tail(
            repository,
            write,
            organization_id=args.org,
            lines=args.lines,
            follow=args.follow,
            interval=args.interval,
        )
    except calls_tail.UnknownOrganization as exc:
        raise AdminError(f"no organisation {exc}") from None
    finally:
        await repository.close()
    return 0


def _prepare_data_dir(settings: Settings) -> None:
    try:
        secure_data_dir(settings.data_dir)
    except OSError as exc:
        raise AdminError(
            f"cannot use data directory {settings.data_dir}: {exc.strerror or exc}"
        ) from None


async def _dispatch(repository: Repository, box: SecretBox, args: argparse.Namespace) -> list[str]:
    target = (args.command, getattr(args, "action", None))
    try:
        if target == ("org", "list"):
            return await admin_lists.list_organizations(repository)
        if target == ("identity", "list"):
            return await admin_lists.list_identities(repository, args.org)
        if target == ("number", "list"):
            return await admin_lists.list_numbers(repository, args.org)
    except admin_lists.UnknownOrganization as exc:
        raise AdminError(f"no organisation {exc}") from None
    return await _dispatch_changes(repository, box, args, target)


async def _dispatch_changes(
    identities: IdentityStore,
    box: SecretBox,
    args: argparse.Namespace,
    target: tuple[str, str | None],
) -> list[str]:
    if target == ("org", "create"):
        return await _create_org(identities, args.name)
    if target == ("identity", "create"):
        return await _create_identity(identities, args.org, args.handle, args.display_name)
    if target == ("identity", "signing-key"):
        return await _signing_key(identities, box, args.identity, args.rotate)
    if target == ("token", "create"):
        expires_at = token_expiry(args.expires_in, args.expires_at, utcnow())
        return await _create_token(identities, args.org, args.identity, expires_at)
    if target == ("token", "list"):
        return await _list_tokens(identities, args.org)
    if target == ("token", "revoke"):
        return await _revoke_token(identities, args.token)
    raise AdminError(f"unknown command {' '.join(t for t in target if t)}")


async def _create_org(identities: IdentityStore, name: str) -> list[str]:
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise AdminError(f"organisation name must be 1-{MAX_NAME_LENGTH} characters")
    organization = await identities.create_organization(name)
    return [organization.id]


async def _require_org(identities: IdentityStore, organization_id: str) -> None:
    if await identities.get_organization(organization_id) is None:
        raise AdminError(f"no organisation {organization_id}")


async def _create_identity(
    identities: IdentityStore, organization_id: str, handle: str, display_name: str | None
) -> list[str]:
    await _require_org(identities, organization_id)
    handle = handle.strip().removeprefix("@")
    if not handle or len(handle) > 64 or not all(c.isalnum() or c in "-_." for c in handle):
        raise AdminError("handle must be 1-64 letters, digits, '-', '_' or '.'")
    try:
        identity = await identities.create_identity(organization_id, handle, display_name)
    except DuplicateHandle as exc:
        raise AdminError(f"the organisation already has an identity @{handle}") from exc
    return [identity.id]


async def _signing_key(
    identities: IdentityStore, box: SecretBox, identity_id: str, rotate: bool
) -> list[str]:
    if await identities.get_identity(identity_id) is None:
        raise AdminError(f"no agent identity {identity_id}")
    existing = await identities.get_identity_signing_key(identity_id)
    if existing is not None and not rotate:
        raise AdminError("the identity already has a signing key; pass --rotate to replace it")
    key = new_signing_key()
    await identities.set_identity_signing_key(identity_id, box.encrypt(key))
    return [key]


def token_expiry(expires_in: str | None, expires_at: str | None, now: datetime) -> datetime | None:
    """When a new token expires: ``--expires-in`` (``90``, ``30m``, ``12h``, ``7d``) or ``--expires-at``."""
    if expires_in is not None:
        match = _DURATION.match(expires_in.strip())
        if match is None:
            raise AdminError("--expires-in must be a number of seconds or like 30m, 12h, 7d")
        lifetime = timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
        if not timedelta(0) < lifetime <= MAX_TOKEN_LIFETIME:
            raise AdminError("--expires-in must be more than 0 and at most 3650 days")
        return now + lifetime
    if expires_at is not None:
        try:
            moment = datetime.fromisoformat(expires_at.strip())
        except ValueError:
            raise AdminError("--expires-at must be an ISO 8601 time with a UTC offset") from None
        if moment.tzinfo is None:
            raise AdminError("--expires-at must be an ISO 8601 time with a UTC offset")
        if not now < moment <= now + MAX_TOKEN_LIFETIME:
            raise AdminError("--expires-at must be in the future and at most 3650 days away")
        return moment
    return None


async def _create_token(
    identities: IdentityStore,
    organization_id: str,
    identity_id: str | None,
    expires_at: datetime | None,
) -> list[str]:
    await _require_org(identities, organization_id)
    if identity_id is not None:
        identity = await identities.get_identity(identity_id)
        if identity is None or identity.organization_id != organization_id:
            raise AdminError(f"no agent identity {identity_id} in organisation {organization_id}")
    issued = await issue_token(identities, organization_id, identity_id, expires_at=expires_at)
    return [issued.secret]


def _describe_token(token: ApiToken, now: datetime) -> str:
    expires = token.expires_at.isoformat() if token.expires_at is not None else "-"
    return "\t".join(
        (
            token.id,
            token.prefix or "-",
            token.organization_id,
            token.agent_identity_id or "admin",
            token.created_at.isoformat(),
            expires,
            token_status(token, now),
        )
    )


async def _list_tokens(identities: IdentityStore, organization_id: str | None) -> list[str]:
    """One tab-separated line per token: never the token, only its display prefix."""
    if organization_id is not None:
        await _require_org(identities, organization_id)
    now = utcnow()
    lines = ["id\tprefix\torganization\tidentity\tcreated_at\texpires_at\tstatus"]
    offset = 0
    while True:
        page = await identities.list_tokens(organization_id, limit=LIST_PAGE, offset=offset)
        lines.extend(_describe_token(token, now) for token in page)
        if len(page) < LIST_PAGE:
            return lines
        offset += LIST_PAGE


def _token_id(reference: str) -> str | None:
    """The canonical id when ``reference`` is a UUID, else None (it may be a prefix)."""
    if len(reference) != 36:
        return None
    try:
        return str(uuid.UUID(reference))
    except ValueError:
        return None


async def _revoke_token(identities: IdentityStore, reference: str) -> list[str]:
    """Revoke the token with this id or display prefix; print its id."""
    reference = reference.strip()
    token_id = _token_id(reference)
    if token_id is None:
        matches = await identities.find_tokens_by_prefix(reference) if reference else []
        if len(matches) > 1:
            raise AdminError(f"more than one token has the prefix {reference}: revoke it by id")
        token_id = matches[0].id if matches else None
    revoked = None if token_id is None else await identities.revoke_token(token_id, utcnow())
    if revoked is None:
        raise AdminError(f"no token {reference}")
    return [revoked.id]
