"""``trunkline token create|list|revoke`` on both backends: expiry, display prefixes, revocation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from tests import postgres_server
from tests.backends import BACKENDS
from tests.conftest import require
from trunkline.cli import main
from trunkline.crypto import hash_token
from trunkline.storage import open_repository
from trunkline.storage.models import ApiToken, utcnow

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/cli.db"
        return
    url = postgres_server.postgres_url()
    require(url is not None, postgres_server.unavailable_reason())
    assert url is not None
    schema = f"t_{uuid.uuid4().hex[:16]}"

    async def admin(statement: str) -> None:
        connection = await asyncpg.connect(url)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(admin(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{url}?search_path={schema}"
    finally:
        asyncio.run(admin(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))


@pytest.fixture
def run(
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Run]:
    monkeypatch.setenv("TRUNKLINE_DATABASE_URL", database_url)
    monkeypatch.delenv("TRUNKLINE_SECRET_KEY", raising=False)

    def command(*args: str) -> tuple[int, str, str]:
        code = main([*args, "--data-dir", str(tmp_path / "data")])
        captured = capsys.readouterr()
        return code, captured.out.strip(), captured.err.strip()

    yield command


def stored_token(database_url: str, token: str) -> ApiToken | None:
    async def lookup() -> ApiToken | None:
        repository = await open_repository(database_url)
        try:
            return await repository.find_token(hash_token(token))
        finally:
            await repository.close()

    return asyncio.run(lookup())


def test_create_with_expiry_list_and_revoke_by_prefix_or_id(run: Run, database_url: str) -> None:
    code, org_id, _ = run("org", "create", "--name", "Acme")
    assert code == 0
    code, identity_id, _ = run("identity", "create", "--org", org_id, "--handle", "sales")
    assert code == 0
    before = utcnow()
    code, scoped, _ = run(
        "token", "create", "--org", org_id, "--identity", identity_id, "--expires-in", "12h"
    )
    assert code == 0 and scoped.startswith("tl_")
    code, admin, _ = run("token", "create", "--org", org_id)
    assert code == 0
    record = stored_token(database_url, scoped)
    assert record is not None and record.expires_at is not None
    assert before + timedelta(hours=12) <= record.expires_at <= utcnow() + timedelta(hours=12)
    assert record.prefix == scoped[:11]

    code, listing, _ = run("token", "list", "--org", org_id)
    assert code == 0
    header, *rows = listing.splitlines()
    assert header.split("\t")[-1] == "status"
    assert scoped not in listing and admin not in listing
    fields = [row.split("\t") for row in rows]
    assert [(f[1], f[3], f[6]) for f in fields] == [
        (scoped[:11], identity_id, "active"),
        (admin[:11], "admin", "active"),
    ]
    assert fields[0][5] == record.expires_at.isoformat() and fields[1][5] == "-"

    code, revoked_id, _ = run("token", "revoke", scoped[:11])
    assert (code, revoked_id) == (0, record.id)
    revoked = stored_token(database_url, scoped)
    assert revoked is not None and revoked.revoked_at is not None
    assert not revoked.is_usable(utcnow())
    code, _, _ = run("token", "revoke", fields[1][0].upper())
    assert code == 0
    code, listing, _ = run("token", "list")
    assert [row.split("\t")[6] for row in listing.splitlines()[1:]] == ["revoked", "revoked"]


def test_bad_expiry_and_unknown_tokens_fail_cleanly(run: Run) -> None:
    _, org_id, _ = run("org", "create", "--name", "Acme")
    for flag, value in (
        ("--expires-in", "0"),
        ("--expires-in", "soon"),
        ("--expires-in", "3651d"),
        ("--expires-at", "2001-01-01T00:00:00+00:00"),
        ("--expires-at", "2099-01-01T00:00:00"),
    ):
        code, out, err = run("token", "create", "--org", org_id, flag, value)
        assert code == 1 and out == "" and flag in err, (flag, value, err)
    code, _, err = run("token", "revoke", "tl_nothing")
    assert code == 1 and err == "trunkline: no token tl_nothing"
    code, _, err = run("token", "revoke", str(uuid.uuid4()))
    assert code == 1 and "no token" in err
    code, listing, _ = run("token", "list", "--org", org_id)
    assert code == 0 and len(listing.splitlines()) == 1
