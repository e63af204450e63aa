"""``trunkline quickstart``: a number for the example agent, made once, a fresh token each run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from trunkline.cli import main
from trunkline.config import settings_from
from trunkline.crypto import hash_token
from trunkline.storage import open_repository


def quickstart(capsys: pytest.CaptureFixture[str], data_dir: Path, *args: str) -> tuple[int, str]:
    code = main(["quickstart", "--data-dir", str(data_dir), *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def field(output: str, name: str) -> str:
    line = next(line for line in output.splitlines() if line.startswith(name))
    return line[len(name) :].split()[0]


async def stored(data_dir: Path, token: str) -> tuple[list[str], str | None, bool]:
    """(the organisation's numbers with their agent URLs, its token's org, the token usable)."""
    repository = await open_repository(settings_from({"data_dir": data_dir}).database_url)
    try:
        found = await repository.find_token(hash_token(token))
        assert found is not None
        numbers = await repository.list_numbers(found.organization_id)
        return (
            [f"{n.number} {n.incoming_call_action} {n.client_websocket_url}" for n in numbers],
            found.organization_id,
            found.revoked_at is None,
        )
    finally:
        await repository.close()


def test_quickstart_makes_a_number_for_the_agent_and_reuses_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    code, first = quickstart(capsys, data_dir)
    assert code == 0, first
    assert field(first, "phone number") == "+15550100000"
    assert "-> ws://127.0.0.1:9000" in first
    assert "trunkline serve --dev" in first
    assert "trunkline call +15550100000 --record out.wav" in first
    token = field(first, "API token")
    numbers, organization, usable = asyncio.run(stored(data_dir, token))
    assert numbers == ["+15550100000 auto_accept ws://127.0.0.1:9000"] and usable
    assert field(first, "organisation") == organization

    code, again = quickstart(capsys, data_dir, "--agent-url", "ws://127.0.0.1:9100/agent")
    assert code == 0, again
    second_token = field(again, "API token")
    assert second_token != token
    assert field(again, "organisation") == organization
    numbers, organization_again, _ = asyncio.run(stored(data_dir, second_token))
    assert organization_again == organization
    assert numbers == ["+15550100000 auto_accept ws://127.0.0.1:9100/agent"]
    assert "agent.py --port 9100" in again
    state = json.loads((data_dir / "quickstart.json").read_text())
    assert state["organization_id"] == organization


def test_quickstart_refuses_an_agent_url_that_is_not_a_websocket(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = quickstart(capsys, tmp_path / "data", "--agent-url", "http://127.0.0.1:9000")
    assert code == 1
    assert "--agent-url: must be a wss:// or ws:// URL" in output
