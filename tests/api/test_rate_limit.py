"""Per-token API rate limits: X-RateLimit-* on every answer, 429 with Retry-After beyond."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import ApiWorld


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"api_rate_per_second": 0.5, "api_rate_burst": 3}


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
    refused = await first.admin.get("/numbers")
    assert refused.status == 429
    assert refused.body == {"detail": "Rate limit exceeded: slow down"}
    assert int(refused.headers["Retry-After"]) >= 1
    assert int(refused.headers["X-RateLimit-Reset"]) >= 1
    assert (await second.admin.get("/numbers")).status == 200  # its own bucket


async def test_requests_without_a_token_share_their_address_bucket(api: ApiWorld) -> None:
    answers = [await api.anonymous.get("/numbers") for _ in range(4)]
    assert [a.status for a in answers] == [401, 401, 401, 429]
