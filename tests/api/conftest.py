"""A live control API on a loopback port, over each storage backend, with organisations to act as.

``api`` runs ``build_app`` under ``web.AppRunner`` on 127.0.0.1:0 with a real
repository (``tests.backends``), the local number pool and real tokens. The
components it is built from are on the ``ApiWorld`` (``api.settings``,
``api.call_control`` ...); a module swaps a whole component by overriding its
fixture (``number_inventory``, ``call_limits``).
Calls, transcripts and texts are written through the repository, the way
the gateway and carrier ingress write them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.backends import make_repository
from tests.conftest import marked_settings
from trunkline.calls.control import CallControlSlot, DialError, Draining
from trunkline.carriers.inventory import LocalPoolInventory, NumberInventory, parse_pool
from trunkline.config import Settings, settings_from
from trunkline.control_api import build_app
from trunkline.control_api.usage import CallLimits
from trunkline.crypto import SecretBox, hash_token, load_master_key, new_token
from trunkline.messaging.ingress import TextIngress
from trunkline.messaging.mms_fetch import MediaFetcher
from trunkline.messaging.outbound import SendResult, TextSender
from trunkline.runtime import open_blob_store, open_http_client, text_sender
from trunkline.storage.blobs import BlobStore
from trunkline.storage.models import (
    AgentIdentity,
    Call,
    CallStatus,
    MediaItem,
    PhoneNumber,
    Text,
    TranscriptSegment,
    new_id,
    utcnow,
)
from trunkline.storage.repository import Repository

API = "/api/v1/phone"
LOCAL_POOL = "+15550100000-+15550100099,+12125550100-+12125550109"
TOLL_FREE_POOL = "+18885550000-+18885550099"


@dataclass(slots=True)
class Answer:
    status: int
    body: Any
    headers: dict[str, str]
    raw: bytes

    def __repr__(self) -> str:
        return f"Answer({self.status}, {self.body!r})"


class Client:
    """Requests as one token (or none), paths relative to the API base."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str | None) -> None:
        self.session = session
        self.base_url = base_url
        self.token = token

    async def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        header: str = "X-API-Key",
    ) -> Answer:
        sent = dict(headers or {})
        if self.token is not None:
            sent.setdefault(header, self.token)
        if data is None and json_body is not None:
            data = json.dumps(json_body).encode()
            sent.setdefault("Content-Type", "application/json")
        async with self.session.request(
            method, f"{self.base_url}{API}{path}", data=data, params=params, headers=sent
        ) as response:
            raw = await response.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            return Answer(response.status, body, dict(response.headers), raw)

    async def get(self, path: str, **kwargs: Any) -> Answer:
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> Answer:
        return await self.call("POST", path, json_body=body, **kwargs)

    async def put(self, path: str, body: Any = None, **kwargs: Any) -> Answer:
        return await self.call("PUT", path, json_body=body, **kwargs)

    async def patch(self, path: str, body: Any = None, **kwargs: Any) -> Answer:
        return await self.call("PATCH", path, json_body=body, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> Answer:
        return await self.call("DELETE", path, **kwargs)


@dataclass
class Org:
    id: str
    admin: Client
    admin_token: str
    identities: dict[str, AgentIdentity] = field(default_factory=dict)
    agents: dict[str, Client] = field(default_factory=dict)  # identity-scoped clients by handle
    agent_tokens: dict[str, str] = field(default_factory=dict)


class ScriptedCallControl:
    """Stands in for the SIP gateway at the ``CallControl`` seam.

    ``place_call`` moves the stored call to ``ringing`` (as a real dial does)
    or raises DialError when ``fail_with`` is set; ``hangup`` records the call.
    """

    def __init__(self, repository: Repository) -> None:
        self.repository = repository
        self.placed: list[tuple[Call, PhoneNumber]] = []
        self.hung_up: list[str] = []
        self.fail_with: str | None = None

    async def place_call(self, call: Call, number: PhoneNumber) -> None:
        if self.fail_with is not None:
            raise DialError(self.fail_with)
        self.placed.append((call, number))
        await self.repository.update_call(
            call.id, {"status": "ringing"}, only_if_status=["initiated"]
        )

    async def hangup(self, call: Call) -> bool:
        self.hung_up.append(call.id)
        return True

    def readiness(self) -> str | None:
        return None

    @property
    def owner(self) -> str:
        return "scripted-node:0"


class SwitchableTextSender:
    """The app's text sender in tests: local delivery unless a test points ``target`` at a
    carrier's client."""

    def __init__(self, target: TextSender) -> None:
        self.target = target

    async def send(self, from_number: str, to_number: str, text: str) -> SendResult:
        return await self.target.send(from_number, to_number, text)


@dataclass
class ApiParts:
    """The components a test's API app is built from."""

    settings: Settings
    repository: Repository
    secret_box: SecretBox
    blob_store: BlobStore
    text_ingress: TextIngress
    text_sender: SwitchableTextSender
    inventory: NumberInventory | None = None
    call_control: CallControlSlot = field(default_factory=CallControlSlot)
    call_limits: CallLimits = field(default_factory=CallLimits)

    @classmethod
    def make(
        cls, settings: Settings, repository: Repository, http: aiohttp.ClientSession
    ) -> ApiParts:
        """The parts a daemon would open, over the given repository and HTTP client."""
        master_key = load_master_key(settings.secret_key, settings.data_dir)
        blob_store = open_blob_store(settings, master_key)
        fetcher = MediaFetcher(http, allow_private=settings.allow_private_targets)
        ingress = TextIngress(repository, blob_store, fetcher.fetch)
        sender = SwitchableTextSender(text_sender(settings, http, ingress, repository))
        return cls(settings, repository, SecretBox(master_key), blob_store, ingress, sender)

    def app(self) -> web.Application:
        return build_app(
            settings=self.settings,
            repository=self.repository,
            secret_box=self.secret_box,
            blob_store=self.blob_store,
            text_ingress=self.text_ingress,
            text_sender=self.text_sender,
            inventory=self.inventory,
            outbox=None,
            call_control=self.call_control,
            draining=Draining(),
            call_limits=self.call_limits,
        )


class ApiWorld:
    def __init__(
        self,
        parts: ApiParts,
        session: aiohttp.ClientSession,
        base_url: str,
        app: web.Application | None = None,
    ) -> None:
        self.repository = parts.repository
        self.settings = parts.settings
        self.secret_box = parts.secret_box
        self.blob_store = parts.blob_store
        self.text_sender = parts.text_sender
        self.call_control = parts.call_control
        self.app = app
        self.session = session
        self.base_url = base_url
        self.anonymous = Client(session, base_url, None)

    def client(self, token: str | None) -> Client:
        return Client(self.session, self.base_url, token)

    async def org(self, name: str = "acme", handles: Iterable[str] = ("sales", "support")) -> Org:
        organization = await self.repository.create_organization(name)
        admin_token = new_token()
        await self.repository.create_token(organization.id, None, hash_token(admin_token))
        org = Org(organization.id, self.client(admin_token), admin_token)
        for handle in handles:
            identity = await self.repository.create_identity(
                organization.id, handle, handle.title()
            )
            token = new_token()
            await self.repository.create_token(organization.id, identity.id, hash_token(token))
            org.identities[handle] = identity
            org.agents[handle] = self.client(token)
            org.agent_tokens[handle] = token
        return org

    async def provision(self, org: Org, handle: str = "sales", **body: Any) -> dict[str, Any]:
        answer = await org.admin.post("/numbers", {"agent_handle": handle, **body})
        assert answer.status == 201, answer
        result: dict[str, Any] = answer.body
        return result

    async def add_call(
        self,
        number: dict[str, Any],
        *,
        status: CallStatus = "completed",
        direction: str = "inbound",
        remote: str = "+14155550123",
        created_at: datetime | None = None,
        talk_seconds: float | None = None,
    ) -> Call:
        stored = await self.repository.get_number(number["id"])
        assert stored is not None
        now = created_at or utcnow()
        started = now if status in ("answered", "completed") else None
        ended = None
        if status in ("completed", "failed", "canceled"):
            ended = now + timedelta(seconds=talk_seconds or 0)
        elif talk_seconds is not None and started is not None:
            started = now - timedelta(seconds=talk_seconds)
        return await self.repository.create_call(
            Call(
                id=new_id(),
                organization_id=stored.organization_id,
                phone_number_id=stored.id,
                local_phone_number=stored.number,
                remote_phone_number=remote,
                direction="outbound" if direction == "outbound" else "inbound",
                status=status,
                client_websocket_url="wss://agent.example.com/ws",
                use_inkbox_tts=None,
                use_inkbox_stt=None,
                hangup_reason="remote" if status == "completed" else None,
                started_at=started,
                ended_at=ended,
                created_at=now,
                updated_at=now,
            )
        )

    async def add_segment(self, call: Call, party: str, text: str, ts_ms: int) -> TranscriptSegment:
        assert party in ("local", "remote", "system")
        return await self.repository.add_transcript_segment(call.id, party, text, ts_ms)  # type: ignore[arg-type]

    async def add_text(
        self,
        number: dict[str, Any],
        remote: str,
        body: str | None,
        *,
        is_read: bool = False,
        media: list[MediaItem] | None = None,
        created_at: datetime | None = None,
    ) -> Text:
        stored = await self.repository.get_number(number["id"])
        assert stored is not None
        now = created_at or utcnow()
        text, inserted = await self.repository.insert_text(
            Text(
                id=new_id(),
                organization_id=stored.organization_id,
                phone_number_id=stored.id,
                direction="inbound",
                local_phone_number=stored.number,
                remote_phone_number=remote,
                text=body,
                type="mms" if media else "sms",
                media=media,
                status="active",
                is_read=is_read,
                created_at=now,
                updated_at=now,
                carrier_message_id=new_id(),
            )
        )
        assert inserted
        return text


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "number_pool": LOCAL_POOL,
        "toll_free_pool": TOLL_FREE_POOL,
        "max_numbers_per_org": 3,
        "api_rate_per_second": 1_000_000.0,  # schemathesis and the SDK tests go fast
        "api_rate_burst": 1_000_000,
        "api_unauthenticated_rate_per_second": 1_000_000.0,
        "api_unauthenticated_burst": 1_000_000,
    }
    values.update(overrides)
    return settings_from(values)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
def call_limits() -> CallLimits:
    """Place-call budgets; a test parametrizes ``call_limits`` to change them."""
    return CallLimits()


InventoryFactory = Callable[[Settings, Repository], NumberInventory]


def local_pool(settings: Settings, repository: Repository) -> NumberInventory:
    return LocalPoolInventory(
        parse_pool(settings.api.number_pool),
        parse_pool(settings.api.toll_free_pool),
        repository.active_numbers_in_use,
    )


@pytest.fixture
def number_inventory() -> InventoryFactory:
    """Where POST /numbers gets numbers: the local pool unless a module overrides this."""
    return local_pool


@pytest.fixture
async def api(
    backend: str,
    tmp_path: Path,
    settings_overrides: dict[str, Any],
    call_limits: CallLimits,
    number_inventory: InventoryFactory,
    request: pytest.FixtureRequest,
) -> AsyncIterator[ApiWorld]:
    settings = make_settings(tmp_path, **{**settings_overrides, **marked_settings(request)})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with (
        make_repository(backend, tmp_path) as repository,
        open_http_client(settings) as http,
    ):
        parts = ApiParts.make(settings, repository, http)
        parts.inventory = number_inventory(settings, repository)
        parts.call_limits = call_limits
        app = parts.app()
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with aiohttp.ClientSession() as session:
                yield ApiWorld(parts, session, f"http://127.0.0.1:{port}", app)
        finally:
            await runner.cleanup()
            await parts.inventory.close()
