"""Provisioning through the Telnyx inventory, against a local server speaking Telnyx's API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.api.conftest import ApiWorld, InventoryFactory
from tests.fakes.telnyx_api import AvailableNumber, FakeTelnyx
from trunkline.carriers.telnyx_numbers import TelnyxNumberInventory

API_KEY = "KEYapi_test_key"


@pytest.fixture
async def telnyx_at() -> AsyncIterator[tuple[FakeTelnyx, str]]:
    """The fake Telnyx account and the base URL it is served at."""
    fake = FakeTelnyx(
        api_key=API_KEY,
        available=[
            AvailableNumber("+13125550100", "local", "IL"),
            AvailableNumber("+13125550101", "local", "IL"),
            AvailableNumber("+18445550100", "toll-free"),
        ],
    )
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield fake, f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest.fixture
def telnyx(telnyx_at: tuple[FakeTelnyx, str]) -> FakeTelnyx:
    return telnyx_at[0]


@pytest.fixture
def number_inventory(telnyx_at: tuple[FakeTelnyx, str]) -> InventoryFactory:
    """The API provisions through Telnyx (the fake) instead of the local pool."""
    return lambda settings, repository: TelnyxNumberInventory(telnyx_at[1], API_KEY)


async def test_provision_orders_from_telnyx_and_release_deletes_it(
    api: ApiWorld, telnyx: FakeTelnyx
) -> None:
    org = await api.org()
    answer = await org.admin.post(
        "/numbers", {"agent_handle": "sales", "type": "local", "state": "IL"}
    )
    assert answer.status == 201, answer
    assert (answer.body["number"], answer.body["state"]) == ("+13125550100", "IL")
    assert list(telnyx.owned.values()) == ["+13125550100"]
    stored = await api.repository.get_number(answer.body["id"])
    assert stored is not None and stored.carrier_order_id == telnyx.orders[0]["id"]
    released = await org.admin.delete(f"/numbers/{answer.body['id']}")
    assert released.status == 204
    assert telnyx.owned == {}


async def test_nothing_available_at_telnyx_is_404(api: ApiWorld, telnyx: FakeTelnyx) -> None:
    org = await api.org()
    answer = await org.admin.post(
        "/numbers", {"agent_handle": "sales", "type": "local", "state": "CA"}
    )
    assert answer.status == 404
    assert telnyx.orders == []


async def test_telnyx_failure_is_502_and_nothing_is_stored(
    api: ApiWorld, telnyx: FakeTelnyx
) -> None:
    org = await api.org()
    telnyx.fail("order", 422, "Number not available", "it was just sold")
    answer = await org.admin.post("/numbers", {"agent_handle": "sales"})
    assert answer.status == 502
    assert answer.body["detail"].startswith("Carrier provisioning failed: Telnyx API error 422")
    assert API_KEY not in answer.body["detail"]
    assert (await org.admin.get("/numbers")).body == []


async def test_release_failure_at_telnyx_is_502_and_the_number_stays(
    api: ApiWorld, telnyx: FakeTelnyx
) -> None:
    org = await api.org()
    number = await api.provision(org)
    telnyx.fail("delete", 500, "Internal error")
    answer = await org.admin.delete(f"/numbers/{number['id']}")
    assert answer.status == 502
    assert (await org.admin.get(f"/numbers/{number['id']}")).body["status"] == "active"
    assert (await org.admin.delete(f"/numbers/{number['id']}")).status == 204


@pytest.mark.settings(max_numbers_per_org=1)
async def test_cap_is_checked_before_ordering(api: ApiWorld, telnyx: FakeTelnyx) -> None:
    org = await api.org()
    await api.provision(org)
    orders_before = len(telnyx.orders)
    answer = await org.admin.post("/numbers", {"agent_handle": "sales"})
    assert answer.status == 429
    assert len(telnyx.orders) == orders_before
