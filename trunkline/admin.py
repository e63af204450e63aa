"""The operator commands other than ``serve``: migrate, org/identity/token creation, signing keys.

Each command prints what it made; secrets (tokens, signing keys) are printed
once as the last word of the output and stored only hashed or sealed.
"""

from __future__ import annotations

import argparse

from trunkline.config import Settings
from trunkline.crypto import SecretBox, hash_token, load_master_key, new_token
from trunkline.data_dir import secure_data_dir
from trunkline.storage import DuplicateHandle, Repository, open_repository
from trunkline.webhooks import new_signing_key

MAX_NAME_LENGTH = 200


class AdminError(Exception):
    """A command that cannot be carried out; the CLI prints it and exits 1."""


async def run_command(settings: Settings, args: argparse.Namespace) -> list[str]:
    secure_data_dir(settings.data_dir)
    master_key = load_master_key(settings.secret_key, settings.data_dir)
    repository = await open_repository(settings.effective_database_url, migrate=False)
    try:
        applied = await repository.migrate()
        if args.command == "migrate":
            if not applied:
                return ["schema is up to date"]
            return [f"applied migration {version}" for version in applied]
        return await _dispatch(repository, SecretBox(master_key), args)
    finally:
        await repository.close()


async def _dispatch(repository: Repository, box: SecretBox, args: argparse.Namespace) -> list[str]:
    target = (args.command, getattr(args, "action", None))
    if target == ("org", "create"):
        return await _create_org(repository, args.name)
    if target == ("identity", "create"):
        return await _create_identity(repository, args.org, args.handle, args.display_name)
    if target == ("identity", "signing-key"):
        return await _signing_key(repository, box, args.identity, args.rotate)
    if target == ("token", "create"):
        return await _create_token(repository, args.org, args.identity)
    raise AdminError(f"unknown command {' '.join(t for t in target if t)}")


async def _create_org(repository: Repository, name: str) -> list[str]:
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise AdminError(f"organisation name must be 1-{MAX_NAME_LENGTH} characters")
    organization = await repository.create_organization(name)
    return [organization.id]


async def _require_org(repository: Repository, organization_id: str) -> None:
    if await repository.get_organization(organization_id) is None:
        raise AdminError(f"no organisation {organization_id}")


async def _create_identity(
    repository: Repository, organization_id: str, handle: str, display_name: str | None
) -> list[str]:
    await _require_org(repository, organization_id)
    handle = handle.strip().removeprefix("@")
    if not handle or len(handle) > 64 or not all(c.isalnum() or c in "-_." for c in handle):
        raise AdminError("handle must be 1-64 letters, digits, '-', '_' or '.'")
    try:
        identity = await repository.create_identity(organization_id, handle, display_name)
    except DuplicateHandle as exc:
        raise AdminError(f"the organisation already has an identity @{handle}") from exc
    return [identity.id]


async def _signing_key(
    repository: Repository, box: SecretBox, identity_id: str, rotate: bool
) -> list[str]:
    if await repository.get_identity(identity_id) is None:
        raise AdminError(f"no agent identity {identity_id}")
    existing = await repository.get_identity_signing_key(identity_id)
    if existing is not None and not rotate:
        raise AdminError("the identity already has a signing key; pass --rotate to replace it")
    key = new_signing_key()
    await repository.set_identity_signing_key(identity_id, box.encrypt(key))
    return [key]


async def _create_token(
    repository: Repository, organization_id: str, identity_id: str | None
) -> list[str]:
    await _require_org(repository, organization_id)
    if identity_id is not None:
        identity = await repository.get_identity(identity_id)
        if identity is None or identity.organization_id != organization_id:
            raise AdminError(f"no agent identity {identity_id} in organisation {organization_id}")
    token = new_token()
    await repository.create_token(organization_id, identity_id, hash_token(token))
    return [token]
