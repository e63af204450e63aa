"""API rate limits: X-RateLimit-* on every answer, 429 with Retry-After beyond.

Valid tokens spend from their own bucket; requests without a valid token
(none, unknown, malformed) spend from their client address's bucket. Requests
come from several loopback source addresses (127.0.0.1, .2, .3) to tell
clients apart. The rates are tiny so no bucket refills while a test runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from prometheus_client import REGISTRY

from tests.api.conftest import ApiWorld, Client
from trunkline.control_api.throttle import client_key


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "api_rate_per_second": 0.01,
        "api_rate_burst": 3,
        "api_unauthenticated_rate_per_second": 0.01,
        "api_unauthenticated_burst": 3,
    }


def refused(bucket: str) -> float:
    return (
        REGISTRY.get_sample_value("trunkline_api_requests_refused_total", {"bucket": bucket}) or 0.0
    )


def evicted(table: str) -> float:
    value = REGISTRY.get_sample_value("trunkline_api_rate_buckets_evicted_total", {"table": table})
    return value or 0.0


@asynccontextmanager
async def from_address(api: ApiWorld, source: str, token: str | None) -> AsyncIterator[Client]:
    """A client whose connections leave from ``source`` (a loopback address)."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield Client(session, api.base_url, token)


async def test_a_token_gets_its_burst_then_429_and_others_are_unaffected(api: ApiWorld) -> None:
    first = await api.org()
    second = await api.org()
    remaining = []
    for _ in range(3):
        answer = await first.admin.get("/numbers")
        assert answer.status == 200
        assert answer.headers["X-RateLimit-Limit"] == "3"
        remaining.append(int(answer.headers["X-RateLimit-Remaining"]))
    assert remaining == [2, 1, 0]
    before = refused("token")
    answer = await first.admin.get("/numbers")
    assert answer.status == 429
    assert answer.body == {"detail": "Rate limit exceeded: slow down"}
    assert int(answer.headers["Retry-After"]) >= 1
    assert int(answer.headers["X-RateLimit-Reset"]) >= 1
    assert refused("token") == before + 1
    assert (await second.admin.get("/numbers")).status == 200  # its own bucket


async def test_requests_without_a_token_share_their_address_bucket(api: ApiWorld) -> None:
    before = refused("address")
    answers = [await api.anonymous.get("/numbers") for _ in range(4)]
    assert [a.status for a in answers] == [401, 401, 401, 429]
    assert answers[-1].body == {"detail": "Rate limit exceeded: slow down"}
    assert int(answers[-1].headers["Retry-After"]) >= 1
    assert refused("address") == before + 1


async def test_made_up_keys_spend_their_address_budget_not_fresh_buckets(api: ApiWorld) -> None:
    org = await api.org()
    for _ in range(2):
        assert (await org.admin.get("/numbers")).status == 200  # the token has 1 left
    before = refused("address")
    statuses = [
        (await api.client(f"tl_made-up-key-{n:04d}").get("/numbers")).status for n in range(400)
    ]
    assert statuses[:3] == [401, 401, 401]
    assert set(statuses[3:]) == {429}
    assert refused("address") == before + 397
    # The flooding address is refused even with a real token: nothing is looked up for it.
    assert (await org.admin.get("/numbers")).status == 429
    # From another address the real token works, and its bucket is the one it had spent.
    async with from_address(api, "127.0.0.2", org.admin_token) as elsewhere:
        answer = await elsewhere.get("/numbers")
    assert answer.status == 200, answer
    assert answer.headers["X-RateLimit-Remaining"] == "0"


@pytest.mark.parametrize(
    "settings_overrides",
    [
        {
            "api_rate_per_second": 0.01,
            "api_rate_burst": 3,
            "api_unauthenticated_rate_per_second": 0.01,
            "api_unauthenticated_burst": 3,
            "api_unauthenticated_max_addresses": 2,
        }
    ],
)
async def test_bucket_tables_stay_bounded_and_real_tokens_keep_theirs(api: ApiWorld) -> None:
    from trunkline.control_api.throttle import THROTTLE

    assert api.app is not None
    throttle = api.app[THROTTLE]
    org = await api.org()
    assert (await org.admin.get("/numbers")).status == 200
    before = evicted("address")
    for source in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
        async with from_address(api, source, f"tl_made-up-key-{source}") as stranger:
            for _ in range(5):
                assert (await stranger.get("/numbers")).status in (401, 429)
    assert len(throttle.addresses) == 2
    assert "127.0.0.1" not in throttle.addresses  # least recently seen, forgotten
    assert evicted("address") == before + 1
    assert len(throttle.tokens) == 1  # only the real token ever had a bucket
    async with from_address(api, "127.0.0.1", org.admin_token) as owner:
        answer = await owner.get("/numbers")
    assert answer.status == 200
    assert answer.headers["X-RateLimit-Remaining"] == "1"


def test_ipv6_peers_share_their_slash_64_and_ipv4_is_kept_as_is() -> None:
    assert client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff:ffff:ffff:ffff")
    assert client_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("fe80::1%eth0") == "fe80::/64"
    assert client_key("::ffff:192.0.2.7") == client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("203.0.113.9") != client_key("203.0.113.10")
    assert client_key(None) == client_key("") == ""
