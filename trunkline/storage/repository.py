"""The storage contract: every aggregate's store plus the lifecycle of the database behind them.

SQLite and PostgreSQL implement it (``trunkline.storage.sql``) and pass one test
suite. Rules every implementation keeps:
- Methods are coroutines and never block the event loop.
- Each method is one transaction. Methods taking ``events`` write those
  ``EventDraft`` rows to the outbox in the same transaction as the change.
- "Not found" is ``None`` (or an empty list), never an exception. Rule
  violations raise the ``trunkline.storage.errors`` exceptions, with nothing written.
- Lists are bounded by ``limit``/``offset``; callers validate ranges.
"""

from __future__ import annotations

from typing import Protocol

from trunkline.storage.stores import (
    CallStore,
    IdentityStore,
    NodeStore,
    NumberStore,
    TextStore,
    WebhookStore,
)


class Repository(
    IdentityStore, NumberStore, CallStore, TextStore, WebhookStore, NodeStore, Protocol
):
    """Everything trunkline persists. Obtain one with ``trunkline.storage.open_repository``."""

    backend: str  # "sqlite" | "postgresql"

    async def migrate(self) -> list[int]:
        """Apply pending schema migrations; return the versions applied (empty if none)."""
        ...

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""
        ...

    async def close(self) -> None:
        """Release the connections; the repository is unusable afterwards."""
        ...

    def queue_wait_seconds(self) -> float:
        """How long the oldest job waiting for the database has waited (0 when none)."""
        ...

    def limit_queues(self, *, per_tenant: int, sheddable_per_tenant: int) -> None:
        """Bound the database jobs one organisation may have waiting (essential, sheddable)."""
        ...
