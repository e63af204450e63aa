"""``trunkline quickstart``: an organisation, identity, token and number pointed at an example agent.

Run against the configured data directory and database (the daemon may be
running or not). What it made is remembered in ``quickstart.json`` in the data
directory, so running it again reuses the organisation, identity and number
(pointing the number at ``--agent-url`` again) instead of making more. The API
token is stored only hashed, so each run issues a new one and prints it once.
The number comes from the embedded pool (``TRUNKLINE_NUMBER_POOL``) even when a
carrier inventory is configured: it is for test calls from this machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from trunkline.admin import AdminError
from trunkline.carriers.inventory import LocalPoolInventory, NoInventory
from trunkline.config import Settings
from trunkline.control_api.errors import ApiError
from trunkline.control_api.urls import check_url
from trunkline.data_dir import secure_data_dir
from trunkline.storage import NumberInUse, open_repository
from trunkline.storage.models import PhoneNumber, new_id, utcnow
from trunkline.storage.repository import Repository
from trunkline.tokens import issue_token

STATE_FILE = "quickstart.json"
ORGANIZATION_NAME = "Quickstart"
DEFAULT_AGENT_URL = "ws://127.0.0.1:9000"
DEFAULT_HANDLE = "example-agent"


@dataclass(frozen=True, slots=True)
class QuickstartState:
    organization_id: str
    identity_id: str
    phone_number_id: str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--agent-url",
        default=DEFAULT_AGENT_URL,
        help=f"the agent the number's calls go to [{DEFAULT_AGENT_URL}]",
    )
    parser.add_argument(
        "--handle", default=DEFAULT_HANDLE, help=f"the agent identity's handle [{DEFAULT_HANDLE}]"
    )


def _read_state(path: Path) -> QuickstartState | None:
    try:
        raw = json.loads(path.read_text())
        return QuickstartState(raw["organization_id"], raw["identity_id"], raw["phone_number_id"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        raise AdminError(f"{path} is not a quickstart record; move it away to start over") from None


async def run(settings: Settings, args: argparse.Namespace) -> list[str]:
    """Make (or reuse) everything and return the lines to print."""
    try:  # the URL's shape; ws:// and loopback are what development mode allows
        agent_url = check_url(
            args.agent_url, "websocket", dataclasses.replace(settings, dev=True), "--agent-url"
        )
    except ApiError as exc:
        raise AdminError(exc.detail) from None
    handle = args.handle.strip().removeprefix("@")
    secure_data_dir(settings.data_dir)
    state_path = settings.data_dir / STATE_FILE
    repository = await open_repository(settings.database_url)
    try:
        state = await _ensure(repository, settings, _read_state(state_path), handle, agent_url)
        state_path.write_text(json.dumps(dataclasses.asdict(state), indent=2) + "\n")
        number = await repository.get_number(state.phone_number_id)
        assert number is not None
        token = await issue_token(repository, state.organization_id, None)
    finally:
        await repository.close()
    return _report(settings, state, handle, number, token.secret)


async def _ensure(
    repository: Repository,
    settings: Settings,
    state: QuickstartState | None,
    handle: str,
    agent_url: str,
) -> QuickstartState:
    organization = (
        None if state is None else await repository.get_organization(state.organization_id)
    )
    if organization is None:
        organization = await repository.create_organization(ORGANIZATION_NAME)
    identity = await repository.get_identity_by_handle(organization.id, handle)
    if identity is None:
        identity = await repository.create_identity(organization.id, handle, "Example agent")
    number = None if state is None else await repository.get_number(state.phone_number_id)
    if number is None or number.status == "released" or number.organization_id != organization.id:
        number = await _new_number(repository, settings, organization.id, identity.id, agent_url)
    elif (number.client_websocket_url, number.agent_identity_id) != (agent_url, identity.id):
        changes = {
            "incoming_call_action": "auto_accept",
            "client_websocket_url": agent_url,
            "incoming_call_webhook_url": None,
            "agent_identity_id": identity.id,
        }
        number = await repository.update_number(number.id, changes) or number
    return QuickstartState(organization.id, identity.id, number.id)


async def _new_number(
    repository: Repository, settings: Settings, organization_id: str, identity_id: str, url: str
) -> PhoneNumber:
    inventory = LocalPoolInventory.from_settings(settings, repository.active_numbers_in_use)
    for _ in range(3):
        try:
            acquired = await inventory.acquire("local", None)
        except NoInventory:
            raise AdminError("TRUNKLINE_NUMBER_POOL has no free number left") from None
        now = utcnow()
        record = PhoneNumber(
            id=new_id(),
            organization_id=organization_id,
            number=acquired.number,
            type="local",
            status="active",
            incoming_call_action="auto_accept",
            client_websocket_url=url,
            incoming_call_webhook_url=None,
            agent_identity_id=identity_id,
            state=acquired.state,
            country=acquired.country,
            created_at=now,
            updated_at=now,
            friendly_name="Quickstart",
        )
        try:
            return await repository.create_number(record, settings.api.max_numbers_per_org)
        except NumberInUse:
            continue  # taken meanwhile through the API: ask for the next one
    raise AdminError("every pool number offered was taken meanwhile; run quickstart again")


def _report(
    settings: Settings, state: QuickstartState, handle: str, number: PhoneNumber, token: str
) -> list[str]:
    api = settings.api.effective_public_url
    agent_port = urlsplit(number.client_websocket_url or DEFAULT_AGENT_URL).port or 9000
    return [
        f"organisation   {state.organization_id}",
        f"agent identity @{handle} ({state.identity_id})",
        f"phone number   {number.number} -> {number.client_websocket_url}",
        f"API token      {token}",
        "                (admin token for this organisation, shown once; stored only hashed)",
        "",
        "Next, each in its own terminal:",
        f"  python examples/echo_agent/agent.py --port {agent_port}  # or examples/talking_agent",
        "  trunkline serve --dev                                # ws:// and loopback agents allowed",
        f"  trunkline call {number.number} --record out.wav     # a test call over SIP/RTP",
        "",
        f"The API: curl -H 'X-API-Key: {token}' {api}/api/v1/phone/numbers",
    ]
