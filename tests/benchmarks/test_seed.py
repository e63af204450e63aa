"""benchmarks._seed: the one number every benchmark's calls dial, stored through the repository."""

from __future__ import annotations

from pathlib import Path

from benchmarks._seed import NUMBER, seed_database
from trunkline.storage import open_repository


async def test_a_migrated_database_gets_the_auto_accept_number_of_the_agent(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'bench.db'}"
    organization_id = await seed_database(
        url, "ws://127.0.0.1:9/agent", "pcm16_16k", recording_enabled=False
    )
    repository = await open_repository(url)
    try:
        number = await repository.find_active_number(NUMBER)
    finally:
        await repository.close()
    assert number is not None
    assert number.organization_id == organization_id
    assert number.incoming_call_action == "auto_accept"
    assert number.client_websocket_url == "ws://127.0.0.1:9/agent"
    assert number.agent_audio == "pcm16_16k" and number.recording_enabled is False
    assert number.agent_identity_id is not None
