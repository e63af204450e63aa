"""NodeStore in SQL: heartbeat rows, and claims on the rows of processes that stopped beating.

A claim is a lease on the dead process's row (``takeover_until``), taken with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL (SQLite runs one writer at a time), so
one survivor at a time ends the dead process's calls; a survivor that dies
mid-way leaves the claim to expire and another finishes the job.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from trunkline.storage.models import NodeRecord
from trunkline.storage.sql.base import Row, SqlStoreBase, as_utc
from trunkline.storage.stores import NodeStore

NODE_COLUMNS = "id, address, started_at, last_seen, takeover_until"


class SqlNodeStore(SqlStoreBase, NodeStore):
    """Process heartbeats over the shared SQL base."""

    def _node(self, row: Row) -> NodeRecord:
        until = row["takeover_until"]
        return NodeRecord(
            id=row["id"],
            address=row["address"],
            started_at=self.timestamp(row["started_at"]),
            last_seen=self.timestamp(row["last_seen"]),
            takeover_until=None if until is None else self.timestamp(until),
        )

    async def register_node(self, node_id: str, address: str | None, now: datetime) -> None:
        async with self.transaction() as tx:
            await tx.execute(
                "INSERT INTO nodes (id, address, started_at, last_seen, takeover_until)"
                " VALUES ($1, $2, $3, $3, NULL) ON CONFLICT (id) DO UPDATE SET"
                " address = excluded.address, started_at = excluded.started_at,"
                " last_seen = excluded.last_seen, takeover_until = NULL",
                node_id,
                address,
                as_utc(now),
            )

    async def beat(self, node_id: str, now: datetime) -> bool:
        async with self.transaction() as tx:
            row = await tx.fetchrow(
                f"SELECT takeover_until FROM nodes WHERE id = $1{self.row_lock}", node_id
            )
            if row is None:
                return False  # declared lost, its calls ended, its row forgotten
            await tx.execute(
                "UPDATE nodes SET last_seen = $2, takeover_until = NULL WHERE id = $1",
                node_id,
                as_utc(now),
            )
            return row["takeover_until"] is None  # else: a survivor is ending its calls

    async def claim_lost_node(
        self, now: datetime, lease_seconds: float, claimer: str
    ) -> NodeRecord | None:
        now = as_utc(now)
        lease = timedelta(seconds=lease_seconds)
        async with self.transaction() as tx:
            row = await tx.fetchrow(
                "UPDATE nodes SET takeover_until = $3 WHERE id IN ("
                " SELECT id FROM nodes WHERE last_seen < $2 AND id <> $4"
                " AND (takeover_until IS NULL OR takeover_until <= $1)"
                f" ORDER BY last_seen LIMIT 1{self.skip_locked})"
                f" RETURNING {NODE_COLUMNS}",
                now,
                now - lease,
                now + lease,
                claimer,
            )
        return None if row is None else self._node(row)

    async def forget_node(self, node_id: str, last_seen: datetime) -> bool:
        row = await self._fetchrow(
            "DELETE FROM nodes WHERE id = $1 AND last_seen = $2 RETURNING id",
            node_id,
            as_utc(last_seen),
        )
        return row is not None

    async def list_nodes(self) -> list[NodeRecord]:
        rows = await self._fetch(f"SELECT {NODE_COLUMNS} FROM nodes ORDER BY last_seen DESC, id")
        return [self._node(r) for r in rows]
