"""Outbound registration against a real registrar (kamailio): digest, refresh, failure, removal.

kamailio challenges trunkline's REGISTER, keeps the binding in memory, and
forwards INVITEs for the address of record (``alice``) to the registered
contact: a call through kamailio reaching the agent is the proof that the
binding is there; a 404 from kamailio that it is not.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from tests.conftest import require
from tests.gateway.conftest import NUMBER, EchoAgent, Trunkline, free_port
from tests.gateway.kamailio import PASSWORD, USER, Registrar, kamailio_available, running_registrar
from tests.gateway.sip_peer import CarrierCall
from trunkline.control_api import serialize
from trunkline.storage.models import PhoneNumber

pytestmark = pytest.mark.settings(
    sip_register_sync_seconds=0.2,
    sip_register_expires_seconds=2,  # below kamailio's min_expires (4): answered 423 first
    sip_register_retry_min_seconds=0.5,
    sip_register_retry_max_seconds=2.0,
)


@pytest.fixture
async def registrar(tmp_path: Path) -> AsyncIterator[Registrar]:
    require(kamailio_available(), "kamailio with its registrar modules (Debian kamailio)")
    async with running_registrar(tmp_path / "kamailio", free_port()) as running:
        yield running


def attempts(result: str) -> float:
    value = REGISTRY.get_sample_value(
        "trunkline_sip_registration_attempts_total", {"result": result}
    )
    return value or 0.0


async def registering_number(
    trunkline: Trunkline, registrar: Registrar, agent: EchoAgent, password: str = PASSWORD
) -> PhoneNumber:
    box = trunkline.services.secret_box
    return await trunkline.number(
        "auto_accept",
        agent.url,
        provider="test-carrier",
        trunk_address=registrar.address,
        auth_username=USER,
        auth_password_encrypted=box.encrypt(password),
        sip_register=True,
    )


async def wait_for_state(trunkline: Trunkline, number: PhoneNumber, state: str) -> PhoneNumber:
    repository = trunkline.services.repository
    for _ in range(150):
        current = await repository.get_number(number.id)
        assert current is not None
        if current.registration_state == state:
            return current
        await asyncio.sleep(0.1)
    raise AssertionError(f"registration never {state}: {current.registration_state}")


async def call_through(registrar: Registrar) -> tuple[CarrierCall, int]:
    """INVITE the address of record at the registrar; the final status that comes back."""
    carrier = await CarrierCall.open(registrar.port)
    response = await carrier.invite(USER)
    return carrier, response.status


async def test_registers_with_digest_and_calls_reach_the_number(
    trunkline: Trunkline, echo_agent: EchoAgent, registrar: Registrar
) -> None:
    before = attempts("registered")
    number = await registering_number(trunkline, registrar, echo_agent)
    registered = await wait_for_state(trunkline, number, "registered")
    shown = serialize.phone_number(registered)
    assert shown["registration"]["state"] == "registered"
    assert shown["registration"]["expires_at"] is not None
    assert shown["registration"]["last_error"] is None
    assert shown["provider_config"]["register"] is True
    assert "s3cret" not in repr(shown)
    assert attempts("registered") > before
    log = registrar.output()
    assert "challenge" in log  # kamailio asked for digest before it stored the contact

    carrier, status = await call_through(registrar)
    try:
        assert status == 200, registrar.output()
        for _ in range(100):
            if echo_agent.calls:
                break
            await asyncio.sleep(0.05)
        assert len(echo_agent.calls) == 1
        calls = await trunkline.services.repository.list_calls(number.organization_id, limit=5)
        assert [c.local_phone_number for c in calls] == [NUMBER]
        bye = await carrier.bye(USER)
        assert bye.status == 200
    finally:
        carrier.close()


async def test_binding_is_refreshed_before_it_expires(
    trunkline: Trunkline, echo_agent: EchoAgent, registrar: Registrar
) -> None:
    number = await registering_number(trunkline, registrar, echo_agent)
    await wait_for_state(trunkline, number, "registered")
    binding = trunkline.gateway.registrations.bindings[number.id]  # type: ignore[union-attr]
    assert binding.registration.expires == 4  # raised to kamailio's Min-Expires after a 423
    first_cseq = binding.registration.cseq
    # Two full lifetimes of the granted 4 s: without refreshes kamailio would drop the binding.
    await asyncio.sleep(8.5)
    assert binding.registration.cseq >= first_cseq + 2
    assert binding.registration.call_id == binding.registration.current.call_id  # type: ignore[union-attr]
    carrier, status = await call_through(registrar)
    try:
        assert status == 200, registrar.output()
        await carrier.bye(USER)
    finally:
        carrier.close()


async def test_wrong_password_fails_backs_off_and_binds_nothing(
    trunkline: Trunkline, echo_agent: EchoAgent, registrar: Registrar
) -> None:
    before = attempts("rejected")
    number = await registering_number(trunkline, registrar, echo_agent, password="wrong")
    failed = await wait_for_state(trunkline, number, "failed")
    assert failed.registration_error == "registrar rejected the credentials"
    assert serialize.phone_number(failed)["registration"]["state"] == "failed"
    binding = trunkline.gateway.registrations.bindings[number.id]  # type: ignore[union-attr]
    assert binding.registration.failures >= 1
    await asyncio.sleep(2.5)  # retries at 0.25-0.5 s, then up to 1 s, then up to 2 s
    assert 2 <= attempts("rejected") - before <= 6  # backed off: not a tight loop
    gauge = REGISTRY.get_sample_value("trunkline_sip_registrations", {"state": "failed"})
    assert gauge == 1.0
    carrier, status = await call_through(registrar)
    carrier.close()
    assert status == 404


# A short drain: an INVITE the registrar gave up on while trunkline answered leaves a call
# live until its unacknowledged 200 times out (32 s), longer than the shutdown is waited for.
@pytest.mark.settings(shutdown_timeout_seconds=2)
async def test_unregisters_when_disabled_and_at_shutdown(
    trunkline: Trunkline, echo_agent: EchoAgent, registrar: Registrar
) -> None:
    repository = trunkline.services.repository
    number = await registering_number(trunkline, registrar, echo_agent)
    await wait_for_state(trunkline, number, "registered")
    await repository.update_number(number.id, {"sip_register": False})
    for _ in range(50):
        carrier, status = await call_through(registrar)
        if status == 200:  # the next sync has not removed the binding yet
            await carrier.bye(USER)
        carrier.close()
        if status == 404:
            break
        await asyncio.sleep(0.1)
    assert status == 404  # the Expires: 0 REGISTER removed the binding

    await repository.update_number(number.id, {"sip_register": True})
    await wait_for_state(trunkline, number, "registered")  # still "registered" in the row
    for _ in range(50):
        carrier, status = await call_through(registrar)
        if status == 200:
            await carrier.bye(USER)
            carrier.close()
            break
        carrier.close()
        await asyncio.sleep(0.1)
    assert status == 200
    before = attempts("unregistered")
    trunkline.shutdown.requested.set()
    await asyncio.wait_for(trunkline.task, 20)
    assert attempts("unregistered") == before + 1
    carrier, status = await call_through(registrar)
    carrier.close()
    assert status == 404
