"""The registration driver with a recording SIP host: which numbers register, what is stored,
timeouts and back-off timers, removal of bindings. (Against a real registrar:
test_registration_kamailio.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY

from trunkline.config import settings_from
from trunkline.crypto import SecretBox
from trunkline.gateway.registrations import Registrations
from trunkline.gateway.sip.message import SipRequest, SipResponse, parse_message, response_to
from trunkline.storage.models import PhoneNumber, new_id, utcnow

BOX = SecretBox(b"k" * 32)


@dataclass
class Sent:
    request: SipRequest
    destination: tuple[str, int]
    on_response: Callable[[SipResponse], None]
    on_timeout: Callable[[], None]


@dataclass
class RecordingHost:
    sent: list[Sent] = field(default_factory=list)
    advertised_address: tuple[str, int] = ("192.0.2.10", 5060)
    outbound_address: tuple[str, int] = ("192.0.2.10", 5062)

    def send_request(
        self,
        request: SipRequest,
        destination: tuple[str, int],
        on_response: Callable[[SipResponse], None] = lambda r: None,
        on_timeout: Callable[[], None] = lambda: None,
        *,
        own_port: bool = False,
    ) -> None:
        assert own_port  # replies must come back to the registering process
        parsed = parse_message(request.serialize())
        assert isinstance(parsed, SipRequest)
        self.sent.append(Sent(parsed, destination, on_response, on_timeout))


@dataclass
class Numbers:
    numbers: list[PhoneNumber] = field(default_factory=list)
    stored: list[tuple[str, str | None, datetime | None, str | None]] = field(default_factory=list)

    async def numbers_to_register(self) -> list[PhoneNumber]:
        return list(self.numbers)

    async def set_registration(
        self, number_id: str, state: str | None, expires_at: datetime | None, error: str | None
    ) -> None:
        self.stored.append((number_id, state, expires_at, error))


def number(**changes: Any) -> PhoneNumber:
    now = utcnow()
    values: dict[str, Any] = {
        "id": new_id(), "organization_id": "org", "number": "+15550100001", "type": "local",
        "status": "active", "incoming_call_action": "auto_reject", "client_websocket_url": None,
        "incoming_call_webhook_url": None, "agent_identity_id": None, "state": None,
        "country": "US", "created_at": now, "updated_at": now, "provider": "carrier",
        "trunk_address": "127.0.0.1:5070", "auth_username": "alice",
        "auth_password_encrypted": BOX.encrypt("s3cret"), "sip_register": True,
    }  # fmt: skip
    values.update(changes)
    return PhoneNumber(**values)


def attempts(result: str) -> float:
    labels = {"result": result}
    return REGISTRY.get_sample_value("trunkline_sip_registration_attempts_total", labels) or 0.0


def driver(numbers: Numbers, host: RecordingHost) -> Registrations:
    settings = settings_from(
        {"sip_register_retry_min_seconds": 30, "sip_register_expires_seconds": 600}
    )
    return Registrations(host, settings, numbers=numbers, secret_box=BOX)  # type: ignore[arg-type]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_number_asking_for_registration_is_registered() -> None:
    numbers, host = Numbers([number(registrar="127.0.0.1:5080")]), RecordingHost()
    registrations = driver(numbers, host)
    await registrations.sync()
    (sent,) = host.sent
    assert sent.destination == ("127.0.0.1", 5080)  # the registrar, not the trunk address
    request = sent.request
    assert request.uri == "sip:127.0.0.1:5080"
    assert request.headers.get("To") == "<sip:alice@127.0.0.1:5080>"
    assert request.headers.get("Contact") == "<sip:+15550100001@192.0.2.10:5060>;expires=600"
    assert request.top_via.port == 5062  # the worker's own port: the answer comes back here
    answer = response_to(request, 200, to_tag="r")
    answer.headers.add("Contact", "<sip:+15550100001@192.0.2.10:5060>;expires=300")
    before = attempts("registered")
    sent.on_response(answer)
    await settle()
    (stored,) = numbers.stored
    assert stored[1:] == ("registered", stored[2], None) and stored[2] is not None
    assert attempts("registered") == before + 1
    binding = registrations.bindings[numbers.numbers[0].id]
    assert binding.timer is not None  # the refresh
    refresh_in = binding.timer.when() - asyncio.get_running_loop().time()
    assert 150 - 1 <= refresh_in <= 240
    await registrations.sync()  # nothing changed: nothing sent
    assert len(host.sent) == 1
    await close_answering(registrations, host)
    assert numbers.stored[-1] == (numbers.numbers[0].id, None, None, None)  # not bound now


async def close_answering(registrations: Registrations, host: RecordingHost) -> None:
    """Close, answering the Expires: 0 REGISTERs it sends."""
    sent_before = len(host.sent)
    closing = asyncio.create_task(registrations.close())
    await settle()
    for sent in host.sent[sent_before:]:
        assert sent.request.headers.get("Expires") == "0"
        sent.on_response(response_to(sent.request, 200, to_tag="r"))
    await asyncio.wait_for(closing, 1)


async def test_no_answer_is_a_failure_with_a_retry_timer() -> None:
    numbers, host = Numbers([number()]), RecordingHost()
    registrations = driver(numbers, host)
    await registrations.sync()
    before = attempts("timeout")
    host.sent[0].on_timeout()
    await settle()
    assert numbers.stored[-1][1:] == ("failed", None, "no response from the registrar")
    assert attempts("timeout") == before + 1
    gauge = REGISTRY.get_sample_value("trunkline_sip_registrations", {"state": "failed"})
    assert gauge == 1.0
    binding = registrations.bindings[numbers.numbers[0].id]
    assert binding.timer is not None
    retry_in = binding.timer.when() - asyncio.get_running_loop().time()
    assert 15 - 1 <= retry_in <= 30  # half to all of TRUNKLINE_SIP_REGISTER_RETRY_MIN_SECONDS
    await registrations.close()  # a failed binding has nothing to remove
    assert len(host.sent) == 1
    assert REGISTRY.get_sample_value("trunkline_sip_registrations", {"state": "failed"}) == 0


@pytest.mark.parametrize(
    "change",
    [{"sip_register": False}, {"registrar": "127.0.0.1:5999"}, {"auth_username": "bob"}],
)
async def test_a_changed_or_disabled_number_removes_its_binding(change: dict[str, Any]) -> None:
    numbers, host = Numbers([number()]), RecordingHost()
    registrations = driver(numbers, host)
    await registrations.sync()
    host.sent[0].on_response(response_to(host.sent[0].request, 200, to_tag="r"))
    await settle()
    changed = number(id=numbers.numbers[0].id, **change)
    numbers.numbers = [changed] if changed.sip_register else []
    await registrations.sync()
    removal = host.sent[1].request
    assert removal.headers.get("Expires") == "0"
    assert removal.call_id == host.sent[0].request.call_id  # the same binding's Call-ID
    before = attempts("unregistered")
    host.sent[1].on_response(response_to(removal, 200, to_tag="r"))
    assert attempts("unregistered") == before + 1
    await settle()
    assert (changed.id, None, None, None) in numbers.stored  # the old status is forgotten
    if changed.sip_register:  # re-registered with the new settings, as a new binding
        assert host.sent[2].request.headers.get("Expires") == "600"
        assert host.sent[2].request.call_id != removal.call_id
    else:
        assert len(host.sent) == 2
    await close_answering(registrations, host)


async def test_numbers_without_a_registrar_or_with_an_unusable_one_are_skipped() -> None:
    numbers = Numbers(
        [
            number(trunk_address=None),
            number(registrar="bad host:x", number="+15550100002"),
            number(auth_password_encrypted="v1:not-a-sealed-value", number="+15550100003"),
        ]
    )
    host = RecordingHost()
    registrations = driver(numbers, host)
    await registrations.sync()
    assert host.sent == [] and registrations.bindings == {}
    await registrations.close()


async def test_a_second_number_under_the_same_address_of_record_is_refused() -> None:
    first = number()
    second = number(number="+15550100002")  # same registrar, same username
    numbers, host = Numbers([first, second]), RecordingHost()
    registrations = driver(numbers, host)
    await registrations.sync()
    await settle()
    assert len(host.sent) == 1 and list(registrations.bindings) == [first.id]
    ((number_id, state, _, error),) = numbers.stored
    assert (number_id, state) == (second.id, "failed")
    assert (
        error
        == "+15550100001 already registers alice at 127.0.0.1:5070; one address of record per number"
    )
    await registrations.sync()
    await settle()
    assert len(numbers.stored) == 1  # told once, not at every sync
    gauge = REGISTRY.get_sample_value("trunkline_sip_registrations", {"state": "failed"})
    assert gauge == 1.0
    host.sent[0].on_timeout()
    await close_answering(registrations, host)
