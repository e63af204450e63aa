"""Phone numbers: provision, list, get, update, release, the cap, and bring-your-own numbers."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import ApiWorld

WSS = "wss://agent.example.com/ws"
HOOK = "https://agent.example.com/hook"
NUMBER_FIELDS = {
    "id",
    "number",
    "type",
    "status",
    "incoming_call_action",
    "client_websocket_url",
    "incoming_call_webhook_url",
    "agent_identity_id",
    "state",
    "country",
    "sms_status",
    "filter_mode",
    "agent_protocol",
    "agent_audio",
    "recording_enabled",
    "provider",
    "friendly_name",
    "provider_config",
    "inbound_routing",
    "registration",
    "created_at",
    "updated_at",
}


async def test_provision_defaults_to_toll_free_auto_reject(api: ApiWorld) -> None:
    org = await api.org()
    answer = await org.admin.post("/numbers", {"agent_handle": "@sales"})
    assert answer.status == 201, answer
    number = answer.body
    assert set(number) == NUMBER_FIELDS
    assert number["number"].startswith("+1888555")
    assert (number["type"], number["status"]) == ("toll_free", "active")
    assert number["incoming_call_action"] == "auto_reject"
    assert number["agent_identity_id"] == org.identities["sales"].id
    assert (number["sms_status"], number["filter_mode"], number["country"]) == (
        "ready",
        "blacklist",
        "US",
    )
    assert datetime.fromisoformat(number["created_at"]).tzinfo is not None


async def test_provision_local_in_a_state_uses_the_area_code(api: ApiWorld) -> None:
    org = await api.org()
    answer = await org.admin.post(
        "/numbers", {"agent_handle": "sales", "type": "local", "state": "NY"}
    )
    assert answer.status == 201, answer
    assert answer.body["number"].startswith("+1212")
    assert (answer.body["type"], answer.body["state"]) == ("local", "NY")


async def test_provision_with_call_settings(api: ApiWorld) -> None:
    org = await api.org()
    answer = await org.admin.post(
        "/numbers",
        {
            "agent_handle": "sales",
            "incoming_call_action": "auto_accept",
            "client_websocket_url": WSS,
        },
    )
    assert answer.status == 201, answer
    assert answer.body["incoming_call_action"] == "auto_accept"
    assert answer.body["client_websocket_url"] == WSS


async def test_provision_with_no_matching_inventory_is_404(api: ApiWorld) -> None:
    org = await api.org()
    answer = await org.admin.post(
        "/numbers", {"agent_handle": "sales", "type": "local", "state": "TX"}
    )
    assert answer.status == 404
    assert "No available numbers" in answer.body["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "agent_handle is required"),
        ({"agent_handle": "sales", "type": "mobile"}, "type: must be one of"),
        ({"agent_handle": "sales", "state": "New York"}, "state:"),
        ({"agent_handle": "sales", "state": "ZZ"}, "state:"),
        (
            {"agent_handle": "sales", "incoming_call_action": "auto_accept"},
            "client_websocket_url is required",
        ),
        (
            {"agent_handle": "sales", "incoming_call_action": "webhook"},
            "incoming_call_webhook_url is required",
        ),
        (
            {"agent_handle": "sales", "client_websocket_url": "https://x.example.com"},
            "client_websocket_url: must be a wss://",
        ),
        (
            {"agent_handle": "sales", "incoming_call_webhook_url": "http://x.example.com"},
            "incoming_call_webhook_url: must be a https://",
        ),
        ({"agent_handle": "sales", "client_websocket_url": "wss://127.0.0.1/ws"}, "private"),
        ({"agent_handle": "sales", "color": "blue"}, "color: unknown field"),
        ({"agent_handle": 7}, "agent_handle: expected a string"),
    ],
)
async def test_provision_validation_names_the_field(
    api: ApiWorld, body: dict[str, Any], field: str
) -> None:
    org = await api.org()
    answer = await org.admin.post("/numbers", body)
    assert answer.status == 422, answer
    assert field in answer.body["detail"]
    assert await api.repository.active_numbers_in_use() == []


async def test_provision_unknown_agent_is_404(api: ApiWorld) -> None:
    org = await api.org()
    answer = await org.admin.post("/numbers", {"agent_handle": "nobody"})
    assert answer.status == 404
    assert "Agent identity not found" in answer.body["detail"]


async def test_identity_token_provisions_only_for_itself(api: ApiWorld) -> None:
    org = await api.org()
    own = await org.agents["sales"].post("/numbers", {"agent_handle": "sales"})
    other = await org.agents["sales"].post("/numbers", {"agent_handle": "support"})
    assert own.status == 201
    assert other.status == 403


async def test_cap_is_429_with_retry_after_and_the_seed_message(api: ApiWorld) -> None:
    org = await api.org()
    for _ in range(3):
        await api.provision(org)
    answer = await org.admin.post("/numbers", {"agent_handle": "sales"})
    assert answer.status == 429
    assert answer.body["detail"].startswith("Organization already has 3 active phone numbers")
    assert int(answer.headers["Retry-After"]) > 0


@pytest.mark.settings(max_numbers_per_org=1)
async def test_cap_is_configurable(api: ApiWorld) -> None:
    org = await api.org()
    await api.provision(org)
    assert (await org.admin.post("/numbers", {"agent_handle": "sales"})).status == 429


async def test_concurrent_provisioning_never_exceeds_the_cap(api: ApiWorld) -> None:
    org = await api.org()
    answers = await asyncio.gather(
        *(org.admin.post("/numbers", {"agent_handle": "sales"}) for _ in range(20))
    )
    statuses = sorted(a.status for a in answers)
    assert statuses == [201] * 3 + [429] * 17, statuses
    listed = await org.admin.get("/numbers")
    active = [n for n in listed.body if n["status"] == "active"]
    assert len(active) == 3
    assert len({n["number"] for n in active}) == 3


async def test_caps_are_per_organisation(api: ApiWorld) -> None:
    first, second = await api.org("one"), await api.org("two")
    for _ in range(3):
        await api.provision(first)
    assert (await second.admin.post("/numbers", {"agent_handle": "sales"})).status == 201


async def test_list_and_get(api: ApiWorld) -> None:
    org = await api.org()
    a = await api.provision(org, "sales")
    b = await api.provision(org, "support")
    listed = await org.admin.get("/numbers")
    assert listed.status == 200
    assert [n["id"] for n in listed.body] == [a["id"], b["id"]]
    got = await org.admin.get(f"/numbers/{a['id']}")
    assert got.status == 200 and got.body == a


async def test_identity_token_lists_only_its_numbers_and_cannot_get_others(api: ApiWorld) -> None:
    org = await api.org()
    mine = await api.provision(org, "sales")
    theirs = await api.provision(org, "support")
    listed = await org.agents["sales"].get("/numbers")
    assert [n["id"] for n in listed.body] == [mine["id"]]
    assert (await org.agents["sales"].get(f"/numbers/{theirs['id']}")).status == 403
    assert (await org.agents["sales"].patch(f"/numbers/{theirs['id']}", {})).status == 403
    assert (await org.agents["sales"].delete(f"/numbers/{theirs['id']}")).status == 403


async def test_get_unknown_or_malformed_id_is_404(api: ApiWorld) -> None:
    org = await api.org()
    unknown = await org.admin.get("/numbers/00000000-0000-4000-8000-000000000000")
    malformed = await org.admin.get("/numbers/not-a-uuid")
    assert (unknown.status, malformed.status) == (404, 404)
    assert unknown.body == {"detail": "Phone number not found"}
    assert malformed.body == {"detail": "Phone number not found"}


async def test_patch_partial_update_and_null_unsubscribes(api: ApiWorld) -> None:
    org = await api.org()
    number = await api.provision(org)
    path = f"/numbers/{number['id']}"
    answer = await org.admin.patch(
        path, {"incoming_call_action": "webhook", "incoming_call_webhook_url": HOOK}
    )
    assert answer.status == 200, answer
    assert (answer.body["incoming_call_action"], answer.body["incoming_call_webhook_url"]) == (
        "webhook",
        HOOK,
    )
    answer = await org.admin.patch(path, {"client_websocket_url": WSS})
    assert answer.body["incoming_call_action"] == "webhook"
    assert answer.body["client_websocket_url"] == WSS
    answer = await org.admin.patch(path, {"incoming_call_action": "auto_accept"})
    assert answer.status == 200 and answer.body["incoming_call_action"] == "auto_accept"
    answer = await org.admin.patch(path, {"incoming_call_webhook_url": None})
    assert answer.status == 200 and answer.body["incoming_call_webhook_url"] is None
    refused = await org.admin.patch(path, {"client_websocket_url": None})
    assert refused.status == 422
    assert refused.body["detail"].startswith("client_websocket_url is required")
    stored = (await org.admin.get(path)).body
    assert stored["client_websocket_url"] == WSS


async def test_patch_agent_options(api: ApiWorld) -> None:
    org = await api.org()
    number = await api.provision(org)
    answer = await org.admin.patch(
        f"/numbers/{number['id']}",
        {"agent_protocol": "twilio", "agent_audio": "pcm16_16k", "recording_enabled": False},
    )
    assert answer.status == 200, answer
    assert (answer.body["agent_protocol"], answer.body["agent_audio"]) == ("twilio", "pcm16_16k")
    assert answer.body["recording_enabled"] is False


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"incoming_call_action": "forward"}, "incoming_call_action: must be one of"),
        ({"filter_mode": "whitelist"}, "filter_mode: unknown field"),
        ({"incoming_call_action": "webhook"}, "incoming_call_webhook_url is required"),
        ({"client_websocket_url": "ws://agent.example.com"}, "must be a wss://"),
        ({"provider_config": {"trunk_address": "sip.example.com"}}, "only registered numbers"),
        ({"recording_enabled": "yes"}, "recording_enabled: expected a boolean"),
    ],
)
async def test_patch_validation(api: ApiWorld, body: dict[str, Any], message: str) -> None:
    org = await api.org()
    number = await api.provision(org)
    answer = await org.admin.patch(f"/numbers/{number['id']}", body)
    assert answer.status == 422, answer
    assert message in answer.body["detail"]


@pytest.mark.parametrize(
    "settings_overrides", [{"allow_insecure_urls": True, "allow_private_targets": True}]
)
async def test_insecure_and_private_urls_when_the_operator_allows_them(api: ApiWorld) -> None:
    org = await api.org()
    number = await api.provision(org)
    answer = await org.admin.patch(
        f"/numbers/{number['id']}",
        {
            "incoming_call_action": "auto_accept",
            "client_websocket_url": "ws://127.0.0.1:9000/agent",
            "incoming_call_webhook_url": "http://127.0.0.1:9000/hook",
        },
    )
    assert answer.status == 200, answer


async def test_release_is_204_then_released_and_unlinked(api: ApiWorld) -> None:
    org = await api.org()
    number = await api.provision(org)
    path = f"/numbers/{number['id']}"
    answer = await org.admin.delete(path)
    assert answer.status == 204 and answer.raw == b""
    got = (await org.admin.get(path)).body
    assert (got["status"], got["agent_identity_id"]) == ("released", None)
    assert (await org.admin.delete(path)).status == 404
    assert (await org.admin.patch(path, {"recording_enabled": True})).status == 404


@pytest.mark.settings(max_numbers_per_org=1)
async def test_release_frees_a_slot_and_the_number(api: ApiWorld) -> None:
    org = await api.org()
    number = await api.provision(org)
    await org.admin.delete(f"/numbers/{number['id']}")
    again = await api.provision(org)
    assert again["number"] == number["number"]


# -- bring your own number -----------------------------------------------------------

REGISTER = {
    "phone_number": "+15739693824",
    "provider": "twilio",
    "agent_id": "@sales",
    "provider_config": {
        "trunk_address": "example-prod.pstn.twilio.com",
        "auth_username": "trunkuser",
        "auth_password": "s3cret-trunk-pass",
    },
    "friendly_name": "prod-1",
    "inbound_routing": {
        "agent_id": "support",
        "fallback": {"agent_id": "sales"},
        "voicemail_message": "Sorry, we missed your call.",
    },
}


async def test_register_stores_trunk_and_routing_but_never_returns_the_password(
    api: ApiWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    org = await api.org()
    answer = await org.admin.post("/numbers/register", REGISTER)
    assert answer.status == 201, answer
    number = answer.body
    assert number["number"] == "+15739693824"
    assert (number["type"], number["state"], number["country"]) == ("local", "MO", "US")
    assert number["provider"] == "twilio" and number["friendly_name"] == "prod-1"
    assert number["agent_identity_id"] == org.identities["sales"].id
    assert number["provider_config"] == {
        "trunk_address": "example-prod.pstn.twilio.com",
        "auth_username": "trunkuser",
        "auth_password_set": True,
        "register": False,
        "registrar": None,
    }
    assert number["registration"] is None
    assert number["inbound_routing"] == {
        "agent_id": org.identities["support"].id,
        "fallback": {"agent_id": org.identities["sales"].id},
        "voicemail_message": "Sorry, we missed your call.",
    }
    assert b"s3cret-trunk-pass" not in answer.raw
    stored = await api.repository.get_number(number["id"])
    assert stored is not None and stored.auth_password_encrypted
    assert "s3cret-trunk-pass" not in stored.auth_password_encrypted
    assert api.secret_box.decrypt(stored.auth_password_encrypted) == "s3cret-trunk-pass"
    assert "s3cret-trunk-pass" not in caplog.text
    listed = await org.admin.get("/numbers")
    assert b"s3cret-trunk-pass" not in listed.raw


@pytest.mark.settings(max_numbers_per_org=2)
async def test_register_twice_is_409_and_counts_against_the_cap(api: ApiWorld) -> None:
    org = await api.org()
    assert (await org.admin.post("/numbers/register", REGISTER)).status == 201
    assert (await org.admin.post("/numbers/register", REGISTER)).status == 409
    await api.provision(org)
    other = {**REGISTER, "phone_number": "+15739693825"}
    assert (await org.admin.post("/numbers/register", other)).status == 429


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"phone_number": "5739693824"}, 422, "phone_number: must be an E.164 number"),
        (
            {"provider_config": {"auth_username": "x"}},
            422,
            "provider_config.trunk_address is required",
        ),
        (
            {"provider_config": {"trunk_address": "bad host!"}},
            422,
            "provider_config.trunk_address:",
        ),
        ({"agent_id": "ghost"}, 404, "agent_id"),
        (
            {"inbound_routing": {"fallback": {"agent_id": "ghost"}}},
            404,
            "inbound_routing.fallback.agent_id",
        ),
        ({"inbound_routing": {"voicemail_message": "x" * 1001}}, 422, "voicemail_message"),
        ({"provider": ""}, 422, "provider:"),
        (
            {"provider": "acme-telecom"},
            422,
            'provider: must be one of "twilio", "telnyx", "vonage", "bandwidth", "plivo",'
            ' "signalwire", "sip_trunk"',
        ),
    ],
)
async def test_register_validation(
    api: ApiWorld, change: dict[str, Any], status: int, message: str
) -> None:
    org = await api.org()
    answer = await org.admin.post("/numbers/register", {**REGISTER, **change})
    assert answer.status == status, answer
    assert message in answer.body["detail"]


async def test_register_by_identity_token_only_for_itself(api: ApiWorld) -> None:
    org = await api.org()
    other = await org.agents["support"].post("/numbers/register", REGISTER)
    assert other.status == 403
    own_routing = {"agent_id": "sales", "fallback": None, "voicemail_message": "Later."}
    own = await org.agents["sales"].post(
        "/numbers/register", {**REGISTER, "inbound_routing": own_routing}
    )
    assert own.status == 201


async def test_patch_merges_provider_config_and_inbound_routing(api: ApiWorld) -> None:
    org = await api.org()
    number = (await org.admin.post("/numbers/register", REGISTER)).body
    path = f"/numbers/{number['id']}"
    answer = await org.admin.patch(
        path,
        {
            "provider_config": {"trunk_address": "sip.example.net:5080"},
            "inbound_routing": {"fallback": None},
        },
    )
    assert answer.status == 200, answer
    assert answer.body["provider_config"] == {
        "trunk_address": "sip.example.net:5080",
        "auth_username": "trunkuser",
        "auth_password_set": True,
        "register": False,
        "registrar": None,
    }
    assert answer.body["inbound_routing"] == {
        "agent_id": org.identities["support"].id,
        "fallback": None,
        "voicemail_message": "Sorry, we missed your call.",
    }
    answer = await org.admin.patch(path, {"provider_config": {"auth_password": None}})
    assert answer.body["provider_config"]["auth_password_set"] is False
    answer = await org.admin.patch(path, {"inbound_routing": None})
    assert answer.body["inbound_routing"] is None


async def test_register_flag_and_registration_status(api: ApiWorld) -> None:
    org = await api.org()
    trunk = {**REGISTER["provider_config"], "register": True}  # type: ignore[dict-item]
    answer = await org.admin.post("/numbers/register", {**REGISTER, "provider_config": trunk})
    assert answer.status == 201, answer
    number = answer.body
    assert number["provider_config"]["register"] is True
    assert number["registration"] == {"state": "pending", "expires_at": None, "last_error": None}
    path = f"/numbers/{number['id']}"
    await api.repository.set_registration(number["id"], "failed", None, "no response")
    shown = (await org.admin.get(path)).body
    assert shown["registration"] == {
        "state": "failed", "expires_at": None, "last_error": "no response",
    }  # fmt: skip
    answer = await org.admin.patch(path, {"provider_config": {"registrar": "reg.example.net:5070"}})
    assert answer.body["provider_config"]["registrar"] == "reg.example.net:5070"
    assert answer.body["registration"]["state"] == "pending"  # a new binding starts over
    stored = await api.repository.numbers_to_register()
    assert [n.id for n in stored] == [number["id"]]
    answer = await org.admin.patch(path, {"provider_config": {"register": False}})
    assert answer.body["registration"] is None
    assert await api.repository.numbers_to_register() == []
    bad = await org.admin.patch(path, {"provider_config": {"registrar": "bad host!"}})
    assert bad.status == 422 and "provider_config.registrar" in bad.body["detail"]
    bad = await org.admin.patch(path, {"provider_config": {"register": "yes"}})
    assert bad.status == 422 and "provider_config.register" in bad.body["detail"]


async def test_release_of_registered_number(api: ApiWorld) -> None:
    org = await api.org()
    number = (await org.admin.post("/numbers/register", REGISTER)).body
    assert (await org.admin.delete(f"/numbers/{number['id']}")).status == 204
    assert (await org.admin.post("/numbers/register", REGISTER)).status == 201


async def test_database_holds_no_token_or_trunk_password_in_plain_text(
    api: ApiWorld, backend: str, tmp_path: Path
) -> None:
    org = await api.org()
    answer = await org.admin.post("/numbers/register", REGISTER)
    assert answer.status == 201, answer
    secrets_ = [b"s3cret-trunk-pass", org.admin_token.encode(), org.agent_tokens["sales"].encode()]
    if backend == "sqlite":
        dump = await asyncio.to_thread(_sqlite_dump, tmp_path)
        assert b"trunkuser" in dump  # the grep does see what is stored in clear
    else:
        dump = await _postgres_dump(api)
        assert b"trunkuser" in dump
    for secret in secrets_:
        assert secret not in dump


def _sqlite_dump(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.glob("*.sqlite*"))


async def _postgres_dump(api: ApiWorld) -> bytes:
    """Every row of every trunkline table, as text."""
    from trunkline.storage.postgres import PostgresRepository

    repository = api.repository
    assert isinstance(repository, PostgresRepository)
    parts: list[bytes] = []
    async with repository.transaction() as tx:
        tables = await tx.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        for table in tables:
            rows = await tx.fetch(f"SELECT t::text AS row FROM {table['table_name']} t")
            parts += [str(r["row"]).encode() for r in rows]
    return b"\n".join(parts)
