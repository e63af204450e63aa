"""Source admission: trusted networks and the bounded per-source budget."""

from __future__ import annotations

import ipaddress

from trunkline.gateway.sip.admission import SourceBudget, is_trusted

NETWORKS = [ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("2001:db8::/32")]


def test_trusted_networks_match_v4_v6_and_mapped_addresses() -> None:
    assert is_trusted("192.0.2.77", NETWORKS)
    assert is_trusted("2001:db8::5", NETWORKS)
    assert is_trusted("::ffff:192.0.2.9", NETWORKS)
    assert not is_trusted("198.51.100.1", NETWORKS)
    assert not is_trusted("not-an-address", NETWORKS)
    assert not is_trusted("127.0.0.1", [])


def test_budget_allows_a_burst_then_the_rate() -> None:
    budget = SourceBudget(rate=5.0)  # burst 10
    admitted = sum(budget.admit("198.51.100.1", now=100.0) for _ in range(50))
    assert admitted == 10
    assert budget.dropped == 40
    assert sum(budget.admit("198.51.100.1", now=101.0) for _ in range(50)) == 5  # one second
    assert budget.admit("198.51.100.2", now=101.0)  # other sources are unaffected


def test_budget_table_is_bounded_and_forgets_the_least_recent() -> None:
    budget = SourceBudget(rate=1.0, max_sources=100)
    for index in range(1000):
        budget.admit(f"10.0.{index // 256}.{index % 256}", now=0.0)
    assert len(budget) == 100
    for _ in range(2):
        budget.admit("203.0.113.1", now=0.0)
    assert not budget.admit("203.0.113.1", now=0.0)  # its bucket is kept while it is busy
