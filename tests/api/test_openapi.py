"""The OpenAPI document matches the served routes, and generated requests never cause a 5xx.

The property test runs schemathesis against a live server in a background
thread (its own event loop), with a valid token, once with ids that do not
exist and once with the ids of a real number, call and text so handlers run
past their lookups.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from aiohttp import web
from schemathesis.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode

from tests.api.conftest import ApiParts, ApiWorld, ScriptedCallControl, local_pool, make_settings
from tests.backends import make_repository
from trunkline.carriers.inventory import NumberInventory
from trunkline.control_api.api import ROUTES
from trunkline.control_api.openapi import OPENAPI_PATH, build_document
from trunkline.crypto import hash_token, new_token
from trunkline.runtime import open_http_client

MAX_EXAMPLES = 12


async def test_every_served_route_is_documented_and_every_documented_route_is_served(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path)
    async with (
        make_repository("sqlite", tmp_path) as repository,
        open_http_client(settings) as http,
    ):
        app = ApiParts.make(settings, repository, http).app()
        served = {
            (route.method.lower(), resource.canonical)
            for resource in app.router.resources()
            for route in resource
            if resource.canonical.startswith("/api/") and route.method != "HEAD"
        }
    document = build_document(ROUTES)
    documented = {
        (method, path) for path, operations in document["paths"].items() for method in operations
    }
    assert served == documented
    assert ("get", OPENAPI_PATH) in documented


def test_document_is_valid_openapi_with_unique_operation_ids() -> None:
    document = build_document(ROUTES)
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len(ROUTES) + 1
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    for path, operations_by_method in document["paths"].items():
        for method, operation in operations_by_method.items():
            assert "responses" in operation, (method, path)
            if operation["security"]:
                assert "401" in operation["responses"], (method, path)


async def test_served_document_equals_the_generated_one(api: ApiWorld) -> None:
    answer = await api.anonymous.get("/openapi.json")
    assert answer.status == 200
    assert answer.body == build_document(ROUTES)


@dataclass
class LiveServer:
    base_url: str
    token: str
    ids: dict[str, str]


def _serve(backend: str, tmp_path: Path, ready: threading.Event, holder: dict[str, Any]) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        holder["stop"] = (asyncio.get_running_loop(), stop)
        settings = make_settings(tmp_path, max_numbers_per_org=50)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        async with (
            make_repository(backend, tmp_path) as repository,
            open_http_client(settings) as http,
        ):
            parts = ApiParts.make(settings, repository, http)
            parts.call_control.current = ScriptedCallControl(repository)
            parts.inventory = inventory = local_pool(settings, repository)
            runner = web.AppRunner(parts.app(), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            try:
                world = ApiWorld(parts, None, "")  # type: ignore[arg-type]
                org = await repository.create_organization("fuzz")
                token = new_token()
                await repository.create_token(org.id, None, hash_token(token))
                identity = await repository.create_identity(org.id, "sales", None)
                number = await _provision(repository, inventory, org.id, identity.id)
                call = await world.add_call(number, status="answered")
                await world.add_segment(call, "remote", "hello world", 0)
                text = await world.add_text(number, "+14155550101", "hello there")
                holder["server"] = LiveServer(
                    f"http://127.0.0.1:{runner.addresses[0][1]}",
                    token,
                    {
                        "phone_number_id": number["id"],
                        "call_id": call.id,
                        "text_id": text.id,
                        "remote_number": "+14155550101",
                    },
                )
                ready.set()
                await stop.wait()
            finally:
                await runner.cleanup()

    try:
        asyncio.run(main())
    except BaseException as exc:
        holder["error"] = exc
        ready.set()


async def _provision(
    repository: Any, inventory: NumberInventory, organization_id: str, identity_id: str
) -> dict[str, Any]:
    from trunkline.control_api.serialize import phone_number
    from trunkline.storage.models import PhoneNumber, new_id, utcnow

    acquired = await inventory.acquire("local", None)
    now = utcnow()
    stored = await repository.create_number(
        PhoneNumber(
            id=new_id(),
            organization_id=organization_id,
            number=acquired.number,
            type="local",
            status="active",
            incoming_call_action="auto_accept",
            client_websocket_url="wss://agent.example.com/ws",
            incoming_call_webhook_url=None,
            agent_identity_id=identity_id,
            state=None,
            country="US",
            created_at=now,
            updated_at=now,
        ),
        max_active=50,
    )
    return phone_number(stored)


@pytest.fixture
def live_server(backend: str, tmp_path: Path) -> Iterator[LiveServer]:
    ready = threading.Event()
    holder: dict[str, Any] = {}
    thread = threading.Thread(target=_serve, args=(backend, tmp_path, ready, holder), daemon=True)
    thread.start()
    assert ready.wait(30), "server did not start"
    if "error" in holder:
        raise holder["error"]
    try:
        yield holder["server"]
    finally:
        loop, stop = holder["stop"]
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)


def _exercise(
    operation: Any,
    mode: GenerationMode,
    path_parameters: dict[str, str] | None,
    server: LiveServer,
    failures: list[str],
) -> None:
    headers = {"X-API-Key": server.token}
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @hypothesis.given(case=strategy)
    def exercise(case: Any) -> None:
        response = case.call(base_url=server.base_url, headers=headers, timeout=10)
        if response.status_code >= 500:
            failures.append(
                f"{case.method} {case.formatted_path} {case.query} {case.body!r} -> "
                f"{response.status_code} {response.text[:200]}"
            )
            return
        if mode == GenerationMode.POSITIVE:
            case.validate_response(
                response,
                checks=[
                    status_code_conformance,
                    content_type_conformance,
                    response_schema_conformance,
                ],
            )

    try:
        exercise()
    except hypothesis.errors.Unsatisfiable:
        # Nothing invalid can be expressed for an operation without inputs.
        if mode == GenerationMode.POSITIVE or operation.body or operation.query:
            raise


@pytest.mark.parametrize("use_real_ids", [False, True], ids=["unknown-ids", "real-ids"])
def test_generated_requests_never_cause_server_errors(
    live_server: LiveServer, use_real_ids: bool
) -> None:
    schema = schemathesis.openapi.from_dict(build_document(ROUTES))
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        names = {p.name for p in operation.path_parameters}
        if use_real_ids and not names:
            continue
        path_parameters = (
            {k: v for k, v in live_server.ids.items() if k in names} if use_real_ids else None
        )
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _exercise(operation, mode, path_parameters, live_server, failures)
    assert failures == []
