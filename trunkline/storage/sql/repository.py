"""SqlRepository: every aggregate's SQL store over one shared connection and dialect.

The per-aggregate stores are mixins over ``SqlStoreBase``; composing them gives
the one object that satisfies ``Repository``. A backend (``sqlite.py``,
``postgres.py``) subclasses this and supplies the connection, the dialect hooks,
full-text search and the lifecycle (migrate, ping, close).
"""

from __future__ import annotations

from trunkline.storage.repository import Repository
from trunkline.storage.sql.calls import SqlCallStore
from trunkline.storage.sql.identities import SqlIdentityStore
from trunkline.storage.sql.nodes import SqlNodeStore
from trunkline.storage.sql.numbers import SqlNumberStore
from trunkline.storage.sql.texts import SqlTextStore
from trunkline.storage.sql.webhooks import SqlWebhookStore


class SqlRepository(
    SqlIdentityStore,
    SqlNumberStore,
    SqlCallStore,
    SqlTextStore,
    SqlWebhookStore,
    SqlNodeStore,
    Repository,
):
    """Shared SQL for both backends; subclasses provide connections, search and lifecycle."""

    def queue_wait_seconds(self) -> float:
        return self.scheduler.oldest_wait()

    def limit_queues(self, *, per_tenant: int, sheddable_per_tenant: int) -> None:
        self.scheduler.configure(
            queue_per_tenant=per_tenant, sheddable_per_tenant=sheddable_per_tenant
        )
