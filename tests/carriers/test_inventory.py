"""Number inventories: the local pool's rules and the Telnyx client against a local Telnyx server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection

import pytest
from aiohttp import web

from tests.fakes.telnyx_api import AvailableNumber, FakeTelnyx
from trunkline.carriers.configured import open_inventory
from trunkline.carriers.inventory import (
    CarrierError,
    LocalPoolInventory,
    NoInventory,
    parse_pool,
)
from trunkline.carriers.numbering import country_for, state_for
from trunkline.carriers.telnyx_numbers import TelnyxNumberInventory
from trunkline.config import Settings, settings_from

API_KEY = "KEYtest_0123456789"


class InUse:
    """The in-use lookup the inventory calls (the repository's in production)."""

    def __init__(self, numbers: Collection[str] = ()) -> None:
        self.numbers = set(numbers)

    async def __call__(self) -> Collection[str]:
        return set(self.numbers)


def pool(local: str, toll_free: str = "", in_use: InUse | None = None) -> LocalPoolInventory:
    return LocalPoolInventory(parse_pool(local), parse_pool(toll_free), in_use or InUse())


# -- pool parsing ---------------------------------------------------------------


def test_parse_pool_reads_ranges_and_single_numbers() -> None:
    ranges = parse_pool("+15550100000-+15550100002, +18885550000")
    assert [(r.first, r.last, r.digits) for r in ranges] == [
        (15550100000, 15550100002, 11),
        (18885550000, 18885550000, 11),
    ]
    assert parse_pool("") == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("15550100000-+15550100001", "is not an E.164 number"),
        ("+15550100005-+15550100001", "FIRST greater than LAST"),
        ("+1555010000-+15550100001", "different lengths"),
        ("+15550100000-", "is not an E.164 number"),
    ],
)
def test_parse_pool_rejects_bad_ranges_naming_the_part(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_pool(text, "TRUNKLINE_NUMBER_POOL")
    assert "TRUNKLINE_NUMBER_POOL" in str(info.value)


# -- local pool -----------------------------------------------------------------


async def test_pool_hands_out_lowest_free_number_of_the_type() -> None:
    inventory = pool("+15550100000-+15550100009", "+18885550000-+18885550009")
    local = await inventory.acquire("local", None)
    toll_free = await inventory.acquire("toll_free", None)
    assert local.number == "+15550100000"
    assert toll_free.number == "+18885550000"
    assert (local.country, local.state, local.carrier_order_id) == ("US", None, None)
    assert toll_free.state is None


async def test_pool_skips_numbers_in_use_and_numbers_it_just_handed_out() -> None:
    in_use = InUse({"+15550100000", "+15550100001"})
    inventory = pool("+15550100000-+15550100003", in_use=in_use)
    first = await inventory.acquire("local", None)
    second = await inventory.acquire("local", None)
    assert (first.number, second.number) == ("+15550100002", "+15550100003")
    with pytest.raises(NoInventory, match="No available numbers"):
        await inventory.acquire("local", None)


async def test_pool_reuses_a_number_once_released() -> None:
    inventory = pool("+15550100000-+15550100000")
    acquired = await inventory.acquire("local", None)
    with pytest.raises(NoInventory):
        await inventory.acquire("local", None)
    await inventory.release(acquired.number)
    assert (await inventory.acquire("local", None)).number == acquired.number


async def test_pool_reservation_expires_so_a_failed_provisioning_does_not_leak() -> None:
    now = [0.0]
    inventory = LocalPoolInventory(parse_pool("+15550100000"), (), InUse(), clock=lambda: now[0])
    await inventory.acquire("local", None)
    with pytest.raises(NoInventory):
        await inventory.acquire("local", None)
    now[0] = 61.0
    assert (await inventory.acquire("local", None)).number == "+15550100000"


async def test_pool_state_filter_uses_nanp_area_codes() -> None:
    inventory = pool("+12125550100-+12125550101,+14155550100-+14155550101")
    new_york = await inventory.acquire("local", "NY")
    california = await inventory.acquire("local", "CA")
    assert (new_york.number, new_york.state) == ("+12125550100", "NY")
    assert (california.number, california.state) == ("+14155550100", "CA")
    with pytest.raises(NoInventory, match="local in TX"):
        await inventory.acquire("local", "TX")


async def test_pool_of_fictional_555_numbers_has_no_state() -> None:
    inventory = pool(Settings().api.number_pool)
    with pytest.raises(NoInventory):
        await inventory.acquire("local", "NY")
    assert (await inventory.acquire("local", None)).state is None


async def test_pool_ignores_state_for_toll_free() -> None:
    inventory = pool("", "+18885550000-+18885550001")
    acquired = await inventory.acquire("toll_free", "NY")
    assert (acquired.number, acquired.state) == ("+18885550000", None)


async def test_pool_concurrent_acquires_get_distinct_numbers() -> None:
    inventory = pool("+15550100000-+15550100019")
    results = await asyncio.gather(*(inventory.acquire("local", None) for _ in range(20)))
    assert len({r.number for r in results}) == 20


def test_open_inventory_picks_pool_without_telnyx_key_and_telnyx_with_it() -> None:
    assert isinstance(open_inventory(Settings(), InUse()), LocalPoolInventory)
    telnyx = open_inventory(settings_from({"telnyx_api_key": "k"}), InUse())
    assert isinstance(telnyx, TelnyxNumberInventory)


def test_open_inventory_reports_bad_pool_setting() -> None:
    with pytest.raises(ValueError, match="TRUNKLINE_TOLL_FREE_POOL"):
        open_inventory(settings_from({"toll_free_pool": "+1800-+1"}), InUse())


def test_numbering_facts() -> None:
    assert state_for("+12125550100") == "NY"
    assert state_for("+18005550100") is None
    assert state_for("+442071234567") is None
    assert country_for("+14165550100") == "CA"
    assert country_for("+442071234567") == "GB"
    assert country_for("+35312345678") == "IE"
    assert country_for("+99912345") == "ZZ"


# -- Telnyx ---------------------------------------------------------------------


@pytest.fixture
async def telnyx() -> AsyncIterator[tuple[FakeTelnyx, str]]:
    fake = FakeTelnyx(
        api_key=API_KEY,
        available=[
            AvailableNumber("+12125550100", "local", "NY"),
            AvailableNumber("+13125550100", "local", "IL"),
            AvailableNumber("+18885550100", "toll-free"),
        ],
    )
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_telnyx_orders_a_local_number_in_the_requested_state(
    telnyx: tuple[FakeTelnyx, str],
) -> None:
    fake, url = telnyx
    inventory = TelnyxNumberInventory(url, API_KEY)
    try:
        acquired = await inventory.acquire("local", "IL")
    finally:
        await inventory.close()
    assert (acquired.number, acquired.state, acquired.country) == ("+13125550100", "IL", "US")
    assert acquired.carrier_order_id == fake.orders[0]["id"]
    assert "+13125550100" in fake.owned.values()
    search = next(q for m, p, q in fake.requests if p == "/v2/available_phone_numbers")
    assert search["filter[phone_number_type]"] == "local"
    assert search["filter[administrative_area]"] == "IL"
    assert search["filter[limit]"] == "1"


async def test_telnyx_orders_toll_free_with_the_telnyx_type_name(
    telnyx: tuple[FakeTelnyx, str],
) -> None:
    fake, url = telnyx
    inventory = TelnyxNumberInventory(url, API_KEY)
    try:
        acquired = await inventory.acquire("toll_free", "NY")
    finally:
        await inventory.close()
    assert (acquired.number, acquired.state) == ("+18885550100", None)
    search = next(q for m, p, q in fake.requests if p == "/v2/available_phone_numbers")
    assert search["filter[phone_number_type]"] == "toll-free"
    assert "filter[administrative_area]" not in search


async def test_telnyx_empty_search_is_no_inventory(telnyx: tuple[FakeTelnyx, str]) -> None:
    fake, url = telnyx
    inventory = TelnyxNumberInventory(url, API_KEY)
    try:
        with pytest.raises(NoInventory):
            await inventory.acquire("local", "WY")
    finally:
        await inventory.close()
    assert fake.orders == []


async def test_telnyx_release_deletes_the_number_from_the_account(
    telnyx: tuple[FakeTelnyx, str],
) -> None:
    fake, url = telnyx
    inventory = TelnyxNumberInventory(url, API_KEY)
    try:
        acquired = await inventory.acquire("local", "NY")
        await inventory.release(acquired.number)
        await inventory.release("+19995550100")  # not on the account: nothing to delete
    finally:
        await inventory.close()
    assert acquired.number not in fake.owned.values()
    assert any(m == "DELETE" for m, _, _ in fake.requests)


async def test_telnyx_wrong_key_is_a_carrier_error_without_the_key(
    telnyx: tuple[FakeTelnyx, str],
) -> None:
    _, url = telnyx
    inventory = TelnyxNumberInventory(url, "KEYwrong_secret")
    try:
        with pytest.raises(CarrierError, match="401") as info:
            await inventory.acquire("local", None)
    finally:
        await inventory.close()
    assert "Authentication failed" in str(info.value)
    assert "KEYwrong_secret" not in str(info.value)


@pytest.mark.parametrize("endpoint", ["search", "order"])
async def test_telnyx_api_errors_become_carrier_errors_with_title_and_detail(
    telnyx: tuple[FakeTelnyx, str], endpoint: str
) -> None:
    fake, url = telnyx
    fake.fail(endpoint, 503, "Service unavailable", "try again later")
    inventory = TelnyxNumberInventory(url, API_KEY)
    try:
        with pytest.raises(CarrierError, match="503.*Service unavailable - try again later"):
            await inventory.acquire("local", None)
    finally:
        await inventory.close()
    assert fake.owned == {}


async def test_telnyx_failed_order_status_is_a_carrier_error(
    telnyx: tuple[FakeTelnyx, str],
) -> None:
    fake, url = telnyx
    fake.order_status = "failure"
    inventory = TelnyxNumberInventory(url, API_KEY)
    try:
        with pytest.raises(CarrierError, match="order failure"):
            await inventory.acquire("local", None)
    finally:
        await inventory.close()


async def test_telnyx_release_failure_is_a_carrier_error(telnyx: tuple[FakeTelnyx, str]) -> None:
    fake, url = telnyx
    inventory = TelnyxNumberInventory(url, API_KEY)
    try:
        acquired = await inventory.acquire("local", None)
        fake.fail("delete", 500, "Internal error")
        with pytest.raises(CarrierError, match="500"):
            await inventory.release(acquired.number)
    finally:
        await inventory.close()


async def test_telnyx_unreachable_is_a_carrier_error() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    inventory = TelnyxNumberInventory(f"http://127.0.0.1:{port}", API_KEY)
    try:
        with pytest.raises(CarrierError, match="unreachable"):
            await inventory.acquire("local", None)
    finally:
        await inventory.close()


async def test_telnyx_non_json_answer_is_a_carrier_error() -> None:
    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>gateway</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/v2/available_phone_numbers", html)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    inventory = TelnyxNumberInventory(f"http://127.0.0.1:{runner.addresses[0][1]}", API_KEY)
    try:
        with pytest.raises(CarrierError, match="not JSON"):
            await inventory.acquire("local", None)
    finally:
        await inventory.close()
        await runner.cleanup()
