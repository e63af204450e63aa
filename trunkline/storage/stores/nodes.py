"""NodeStore: the heartbeat of every process sharing the database, and claims on dead ones."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from trunkline.storage.models import NodeRecord


class NodeStore(Protocol):
    """One row per live process (its owner name, ``<node id>:<slot>``), refreshed as it runs."""

    async def register_node(self, node_id: str, address: str | None, now: datetime) -> None:
        """Start (or restart) this process's row: seen ``now``, no takeover pending."""
        ...

    async def beat(self, node_id: str, now: datetime) -> bool:
        """Refresh this process's heartbeat; False when its row is gone (it was taken over)."""
        ...

    async def claim_lost_node(
        self, now: datetime, lease_seconds: float, claimer: str
    ) -> NodeRecord | None:
        """Claim one process silent for more than ``lease_seconds``, for ``lease_seconds``.

        Two claimers never get the same row at once; a claimer that dies leaves
        its claim to expire, and the node can be claimed again.
        """
        ...

    async def forget_node(self, node_id: str, last_seen: datetime) -> bool:
        """Delete the row if it was not refreshed since ``last_seen`` (the process is still gone)."""
        ...

    async def list_nodes(self) -> list[NodeRecord]:
        """Every registered process, most recently seen first."""
        ...
