"""Operator commands: each prints what it made; secrets are shown once and stored hashed/sealed."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from trunkline.cli import main
from trunkline.config import Settings
from trunkline.crypto import SecretBox, hash_token, load_master_key
from trunkline.storage.sqlite import SqliteRepository


def run(capsys: pytest.CaptureFixture[str], data_dir: Path, *args: str) -> tuple[int, str, str]:
    code = main([*args, "--data-dir", str(data_dir)])
    captured = capsys.readouterr()
    return code, captured.out.strip(), captured.err.strip()


def test_org_identity_token_and_signing_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("TRUNKLINE_DATABASE_URL", "TRUNKLINE_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "data"
    code, out, _ = run(capsys, data, "migrate")
    assert code == 0 and out.splitlines()[0] == "applied migration 1"
    assert run(capsys, data, "migrate")[1] == "schema is up to date"
    code, org_id, _ = run(capsys, data, "org", "create", "--name", "Acme")
    assert code == 0 and len(org_id) == 36
    code, identity_id, _ = run(
        capsys, data, "identity", "create", "--org", org_id, "--handle", "@sales"
    )
    assert code == 0
    code, _, err = run(capsys, data, "identity", "create", "--org", org_id, "--handle", "sales")
    assert code == 1 and "already has an identity @sales" in err
    code, token, _ = run(capsys, data, "token", "create", "--org", org_id)
    assert code == 0 and token.split()[-1].startswith("tl_")
    code, key, _ = run(capsys, data, "identity", "signing-key", "--identity", identity_id)
    assert code == 0 and key.startswith("whsec_")
    code, _, err = run(capsys, data, "identity", "signing-key", "--identity", identity_id)
    assert code == 1 and "--rotate" in err
    code, rotated, _ = run(
        capsys, data, "identity", "signing-key", "--identity", identity_id, "--rotate"
    )
    assert code == 0 and rotated != key

    raw = b"".join(p.read_bytes() for p in data.glob("trunkline.db*"))
    assert token.encode() not in raw and rotated.encode() not in raw

    async def stored() -> tuple[bool, str | None]:
        repository = await SqliteRepository.open(data / "trunkline.db")
        try:
            found = await repository.find_token(hash_token(token))
            sealed = await repository.get_identity_signing_key(identity_id)
        finally:
            await repository.close()
        return found is not None and found.is_admin, sealed

    is_admin, sealed = asyncio.run(stored())
    assert is_admin and sealed is not None
    box = SecretBox(load_master_key(Settings(data_dir=data).secret_key, data))
    assert box.decrypt(sealed) == rotated


def test_unknown_references_fail_cleanly(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRUNKLINE_DATABASE_URL", raising=False)
    data = tmp_path / "data"
    code, _, err = run(capsys, data, "token", "create", "--org", "nope")
    # A command that makes a new data directory says so, on stderr, before anything else.
    assert err.splitlines()[0].endswith(f"creating data directory {data}")
    assert code == 1 and err.splitlines()[-1] == "trunkline: no organisation nope"
    code, org_id, _ = run(capsys, data, "org", "create", "--name", "Acme")
    code, _, err = run(capsys, data, "token", "create", "--org", org_id, "--identity", "x")
    assert code == 1 and "no agent identity x" in err
    code, _, err = run(capsys, data, "identity", "create", "--org", org_id, "--handle", "a b")
    assert code == 1 and "handle must be" in err
    with sqlite3.connect(data / "trunkline.db") as connection:
        assert connection.execute("SELECT COUNT(*) FROM api_tokens").fetchone() == (0,)
