"""Organisation admins list, create and revoke API keys; revoked and expired keys get 401.

The cross-process case runs two complete applications, each with its own
repository connection (and so any per-process state), on one database:
a key revoked through one is refused by the other.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from tests.api.conftest import ApiParts, ApiWorld, Client, make_settings
from tests.backends import postgres_schema, postgres_test_url
from trunkline.control_api import api_keys
from trunkline.crypto import hash_token, new_token
from trunkline.runtime import open_http_client
from trunkline.storage.models import utcnow
from trunkline.storage.postgres import PostgresRepository
from trunkline.storage.repository import Repository
from trunkline.storage.sqlite import SqliteRepository

KEYS = "/../api-keys"
REVOCATION_DEADLINE_SECONDS = 1.0


def refused(reason: str) -> float:
    value = REGISTRY.get_sample_value("trunkline_api_tokens_refused_total", {"reason": reason})
    return value or 0.0


ADMIN_ONLY = {"detail": "Only organisation admin tokens can manage API keys"}


async def test_admin_creates_lists_and_revokes_keys(api: ApiWorld) -> None:
    org = await api.org()
    created = await org.admin.post(
        KEYS, {"agent_identity_id": org.identities["sales"].id, "expires_in_seconds": 3600}
    )
    assert created.status == 201, created
    key = created.body
    secret = key["api_key"]
    assert secret.startswith("tl_") and key["prefix"] == secret[:11]
    assert key["status"] == "active" and key["revoked_at"] is None
    assert key["agent_identity_id"] == org.identities["sales"].id
    assert (await api.client(secret).get("/numbers")).status == 200

    listed = await org.admin.get(KEYS)
    assert listed.status == 200
    assert secret.encode() not in listed.raw
    assert all("api_key" not in k for k in listed.body)
    ours = [k for k in listed.body if k["id"] == key["id"]]
    assert ours == [{k: v for k, v in key.items() if k != "api_key"}]
    assert len(listed.body) == 4  # the admin key, two identity keys, the new one

    revoked = await org.admin.delete(f"{KEYS}/{key['id']}")
    assert revoked.status == 200 and revoked.body["status"] == "revoked"
    before = refused("revoked")
    answer = await api.client(secret).get("/numbers")
    assert (answer.status, answer.body) == (401, {"detail": "Service token revoked or expired"})
    assert refused("revoked") == before + 1
    again = await org.admin.get(f"{KEYS}/{key['id']}")
    assert again.body["revoked_at"] == revoked.body["revoked_at"]


async def test_identity_tokens_and_other_organisations_cannot_manage_keys(
    api: ApiWorld,
) -> None:
    org = await api.org()
    other = await api.org("globex")
    own_key = (await org.admin.get(KEYS)).body[0]["id"]
    sales = org.agents["sales"]
    answers = [
        await sales.get(KEYS),
        await sales.post(KEYS, {}),
        await sales.get(f"{KEYS}/{own_key}"),
        await sales.delete(f"{KEYS}/{own_key}"),
    ]
    assert [(a.status, a.body) for a in answers] == [(403, ADMIN_ONLY)] * 4
    assert (await other.admin.get(f"{KEYS}/{own_key}")).status == 404
    assert (await other.admin.delete(f"{KEYS}/{own_key}")).status == 404
    foreign_identity = await other.admin.post(
        KEYS, {"agent_identity_id": org.identities["sales"].id}
    )
    assert foreign_identity.status == 404
    assert len((await other.admin.get(KEYS)).body) == 3
    assert (await org.admin.get("/numbers")).status == 200  # still not revoked


async def test_usable_keys_per_organisation_are_capped(
    api: ApiWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api_keys, "MAX_USABLE_KEYS_PER_ORG", 4)
    org = await api.org()  # holds three keys already
    other = await api.org("globex")
    await api.repository.create_token(
        org.id, None, hash_token(new_token()), expires_at=utcnow() - timedelta(seconds=1)
    )
    fourth = await org.admin.post(KEYS, {})
    assert fourth.status == 201
    before = REGISTRY.get_sample_value("trunkline_api_key_creations_refused_total") or 0.0
    fifth = await org.admin.post(KEYS, {})
    assert fifth.status == 429 and fifth.headers["Retry-After"] == "60"
    assert "usable API keys" in fifth.body["detail"]
    assert REGISTRY.get_sample_value("trunkline_api_key_creations_refused_total") == before + 1
    assert (await other.admin.post(KEYS, {})).status == 201
    assert (await org.admin.delete(f"{KEYS}/{fourth.body['id']}")).status == 200
    assert (await org.admin.post(KEYS, {})).status == 201


async def test_key_expiry_is_checked(api: ApiWorld) -> None:
    org = await api.org()
    past = new_token()
    await api.repository.create_token(
        org.id, None, hash_token(past), expires_at=utcnow() - timedelta(seconds=1)
    )
    before = refused("expired")
    answer = await api.client(past).get("/numbers")
    assert (answer.status, answer.body) == (401, {"detail": "Service token revoked or expired"})
    assert refused("expired") == before + 1
    later = (utcnow() + timedelta(days=2)).isoformat()
    created = await org.admin.post(KEYS, {"expires_at": later})
    assert created.status == 201 and created.body["expires_at"] is not None
    assert (await api.client(created.body["api_key"]).get("/numbers")).status == 200
    for body in (
        {"expires_at": (utcnow() - timedelta(minutes=1)).isoformat()},
        {"expires_at": "2099-01-01T00:00:00"},
        {"expires_at": "tomorrow"},
        {"expires_at": later, "expires_in_seconds": 60},
        {"expires_in_seconds": 0},
    ):
        answer = await org.admin.post(KEYS, body)
        assert answer.status == 422 and "expires" in answer.body["detail"], (body, answer)
    assert (
        len((await org.admin.get(KEYS)).body) == 5
    )  # three from api.org(), the expired one, the new one


@asynccontextmanager
async def shared_database(backend: str, tmp_path: Path) -> AsyncIterator[list[Repository]]:
    """Two repositories (two connections or pools) on one migrated database."""
    if backend == "sqlite":
        path = tmp_path / "shared.sqlite"
        first = await SqliteRepository.open(path)
        second = await SqliteRepository.open(path)
        try:
            await first.migrate()
            yield [first, second]
        finally:
            await first.close()
            await second.close()
        return
    async with postgres_schema() as schema:
        url = await postgres_test_url()
        first = await PostgresRepository.open(url, search_path=schema, max_size=2)
        second = await PostgresRepository.open(url, search_path=schema, max_size=2)
        try:
            await first.migrate()
            yield [first, second]
        finally:
            await first.close()
            await second.close()


@asynccontextmanager
async def serve(repository: Repository, tmp_path: Path) -> AsyncIterator[str]:
    settings = make_settings(tmp_path / uuid.uuid4().hex)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with open_http_client(settings) as http:
        runner = web.AppRunner(ApiParts.make(settings, repository, http).app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            yield f"http://127.0.0.1:{runner.addresses[0][1]}"
        finally:
            await runner.cleanup()


async def test_a_key_revoked_through_one_app_is_refused_by_another(
    backend: str, tmp_path: Path
) -> None:
    async with (
        shared_database(backend, tmp_path) as (first, second),
        serve(first, tmp_path) as first_url,
        serve(second, tmp_path) as second_url,
        aiohttp.ClientSession() as session,
    ):
        org = await first.create_organization("acme")
        admin_token = new_token()
        await first.create_token(org.id, None, hash_token(admin_token))
        admin = Client(session, first_url, admin_token)
        created = await admin.post(KEYS, {})
        assert created.status == 201
        victim = Client(session, second_url, created.body["api_key"])
        for _ in range(3):  # used (and so possibly remembered) by the second app
            assert (await victim.get("/numbers")).status == 200
        assert (await admin.delete(f"{KEYS}/{created.body['id']}")).status == 200
        deadline = time.monotonic() + REVOCATION_DEADLINE_SECONDS
        status = 200
        while time.monotonic() < deadline:
            status = (await victim.get("/numbers")).status
            if status == 401:
                break
        assert status == 401
