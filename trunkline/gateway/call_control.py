"""The control API's view of live calls, answered by this process's gateway.

API hang-ups of calls another process owns go to that owner: a sibling worker
over its Unix socket (``calls.owner_channel``), a process on another machine
over PostgreSQL NOTIFY (``calls.owner_notify``).
"""

from __future__ import annotations

from trunkline.calls.owner_channel import ask_owner, owner_id, same_node
from trunkline.calls.owner_notify import PgCallActions
from trunkline.config import Settings
from trunkline.gateway.sip_gateway import SipGateway
from trunkline.storage.models import Call, PhoneNumber


class GatewayCallControl:
    """What the control API asks of live calls, answered by this process's gateway."""

    def __init__(self, gateway: SipGateway, settings: Settings) -> None:
        self.gateway = gateway
        self._settings = settings  # ``worker_of`` and ``data_dir``: where sibling workers listen
        self.remote_owners: PgCallActions | None = None  # processes on other machines

    async def place_call(self, call: Call, number: PhoneNumber) -> None:
        await self.gateway.outbound.place(call, number)

    @property
    def owner(self) -> str:
        return owner_id()

    def readiness(self) -> str | None:
        if self.gateway.transport is None:
            return "SIP socket not bound"
        if self.gateway.ports.at_capacity:
            return "at capacity: no free RTP port"
        return None

    async def hangup(self, call: Call) -> bool:
        if await self.gateway.hangup(call.id):
            return True
        if not call.owner or call.owner == owner_id():
            return False
        if self._settings.process.worker_of and same_node(call.owner):
            run_dir = self._settings.data_dir / "run"
            if await ask_owner(run_dir, call.owner, call.id):  # another worker carries it
                return True
        if self.remote_owners is not None:  # another process, perhaps another machine
            return await self.remote_owners.ask_hangup(call.owner, call.id)
        return False
