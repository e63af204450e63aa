"""Each aggregate's SQL store implements exactly its Protocol, and the Repository is all of them.

The per-aggregate mixins inherit their Protocol explicitly, so mypy checks every
signature; these tests check what mypy cannot see at the mixin level: that no
Protocol method is left to its empty body, that the stores do not overlap, and
that each SQL module holds exactly its own aggregate's methods.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

import pytest

from trunkline.storage.postgres import PostgresRepository
from trunkline.storage.repository import Repository
from trunkline.storage.sql import SqlRepository
from trunkline.storage.sql.calls import SqlCallStore
from trunkline.storage.sql.identities import SqlIdentityStore
from trunkline.storage.sql.nodes import SqlNodeStore
from trunkline.storage.sql.numbers import SqlNumberStore
from trunkline.storage.sql.texts import SqlTextStore
from trunkline.storage.sql.webhooks import SqlWebhookStore
from trunkline.storage.sqlite import SqliteRepository
from trunkline.storage.stores import (
    CallStore,
    IdentityStore,
    NodeStore,
    NumberStore,
    TextStore,
    WebhookStore,
)

STORES: dict[type, type] = {
    IdentityStore: SqlIdentityStore,
    NumberStore: SqlNumberStore,
    CallStore: SqlCallStore,
    TextStore: SqlTextStore,
    WebhookStore: SqlWebhookStore,
    NodeStore: SqlNodeStore,
}
LIFECYCLE = {"migrate", "ping", "close", "queue_wait_seconds", "limit_queues"}
PROTOCOLS = (*STORES, Repository)


def own_methods(cls: type) -> dict[str, Callable[..., object]]:
    """The public functions defined in the class body itself (not inherited)."""
    return {
        name: value
        for name, value in vars(cls).items()
        if not name.startswith("_") and inspect.isfunction(value)
    }


def test_the_stores_do_not_overlap_and_make_up_the_repository() -> None:
    seen: dict[str, type] = {}
    for store in STORES:
        for name in own_methods(store):
            assert name not in seen, f"{name} is on both {seen[name].__name__} and {store.__name__}"
            seen[name] = store
    assert set(own_methods(Repository)) == LIFECYCLE
    assert set(Repository.__mro__) >= set(STORES)
    assert len(seen) > 50  # every method of the old single contract kept a home


@pytest.mark.parametrize("store", list(STORES), ids=lambda s: s.__name__)
def test_each_sql_store_implements_exactly_its_protocol(store: type) -> None:
    sql_store = STORES[store]
    assert store in sql_store.__mro__
    wanted = own_methods(store)
    implemented = own_methods(sql_store)
    assert set(implemented) - {"rebuild_summaries"} == set(wanted)
    for name, declared in wanted.items():
        implementation = implemented[name]
        assert inspect.signature(implementation) == inspect.signature(declared), name
        assert inspect.iscoroutinefunction(implementation) == inspect.iscoroutinefunction(
            declared
        ), name


@pytest.mark.parametrize("backend", [SqliteRepository, PostgresRepository])
def test_no_backend_method_falls_through_to_an_empty_protocol_body(backend: type) -> None:
    assert issubclass(backend, SqlRepository)
    assert not inspect.isabstract(backend)
    for protocol in PROTOCOLS:
        for name, declared in own_methods(protocol).items():
            resolved = getattr(backend, name)
            assert resolved is not declared, f"{backend.__name__}.{name} is not implemented"
            defined_on = next(c for c in backend.__mro__ if name in vars(c))
            assert defined_on not in PROTOCOLS, f"{backend.__name__}.{name} comes from a Protocol"


async def test_a_backend_serves_through_each_narrow_store(tmp_path: Path) -> None:
    """Typed assignments (mypy checks the backend fits every store), then one call through each."""
    repository = await SqliteRepository.open(tmp_path / "stores.sqlite")
    try:
        await repository.migrate()
        identities: IdentityStore = repository
        numbers: NumberStore = repository
        calls: CallStore = repository
        texts: TextStore = repository
        webhooks: WebhookStore = repository
        organization = await identities.create_organization("acme")
        assert await identities.get_organization(organization.id) == organization
        assert await numbers.active_numbers_in_use() == []
        assert await calls.list_live_calls("node:1") == []
        assert await texts.list_conversations(organization.id) == []
        assert await webhooks.pending_deliveries() == 0
    finally:
        await repository.close()
