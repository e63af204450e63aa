"""The one description of every API route, from which routing, validation and OpenAPI follow.

A ``Route`` names its method, path (relative to its prefix, ``/api/v1/phone`` by
default), handler,
parameters, request-body schema and documented responses. ``add_routes``
registers each with aiohttp behind one wrapper that authenticates, parses and
validates the path, query and body against those same schemas, and hands the
handler a ``Ctx`` holding clean values. ``openapi.build_document`` reads the
same table, so the document cannot drift from what is served.

Request rules the wrapper enforces:
- auth first (401), then path parameters: a malformed id names nothing, so it
  is a 404 with the resource's "not found" message;
- query parameters are converted by schema type (422 naming the parameter);
  unknown query parameters are ignored;
- the body must be one JSON object (422), at most ``MAX_BODY_BYTES`` (413),
  with no unknown fields (422 ``<field>: unknown field``);
- no string in the query or anywhere in the body (keys included) may hold NUL
  or an unpaired surrogate (422 naming the field), so no backend is handed a
  string it cannot store.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from trunkline.control_api import caller
from trunkline.control_api.auth import Principal
from trunkline.control_api.errors import API_PREFIX, ApiError
from trunkline.control_api.keys import REPOSITORY
from trunkline.control_api.schema import (
    UNSTORABLE,
    Schema,
    canonical_uuid,
    check_storable,
    is_storable,
    parse_query_value,
    validate,
)
from trunkline.storage.fairness import database_work
from trunkline.storage.stores import (
    CallStore,
    IdentityStore,
    NumberStore,
    TextStore,
    WebhookStore,
)

MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    location: Literal["path", "query"]
    schema: Schema
    description: str
    required: bool = False
    default: Any = None
    not_found: str = "Not Found"  # path parameters: the 404 detail when malformed


@dataclass(frozen=True, slots=True)
class Reply:
    description: str
    schema: Schema | None = None  # None: no body (204)
    headers: Mapping[str, str] = field(default_factory=dict)  # header name -> description


@dataclass(slots=True)
class Ctx:
    """One validated request as a handler sees it."""

    request: web.Request
    principal: Principal
    path: dict[str, str]
    query: dict[str, Any]
    body: dict[str, Any]

    # One view per aggregate, all onto the app's repository: a handler names the
    # store it uses, so it type-checks against that store's Protocol alone.
    @property
    def identities(self) -> IdentityStore:
        return self.request.app[REPOSITORY]

    @property
    def numbers(self) -> NumberStore:
        return self.request.app[REPOSITORY]

    @property
    def calls(self) -> CallStore:
        return self.request.app[REPOSITORY]

    @property
    def texts(self) -> TextStore:
        return self.request.app[REPOSITORY]

    @property
    def webhooks(self) -> WebhookStore:
        return self.request.app[REPOSITORY]


RouteHandler = Callable[[Ctx], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: RouteHandler
    operation_id: str
    summary: str
    tag: str
    responses: Mapping[int, Reply]
    params: Sequence[Param] = ()
    body: Schema | None = None
    description: str = ""
    prefix: str = API_PREFIX  # the phone API; webhook routes live under /api/v1/webhooks

    @property
    def full_path(self) -> str:
        return self.prefix + self.path


def uuid_param(name: str, not_found: str, description: str) -> Param:
    return Param(
        name, "path", {"type": "string", "format": "uuid"}, description, True, None, not_found
    )


def add_routes(app: web.Application, routes: Sequence[Route]) -> None:
    """Register every route; more specific paths must come before parameterised ones."""
    for route in routes:
        app.router.add_route(route.method, route.full_path, _endpoint(route))


def _endpoint(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        principal = await caller.principal(request, request.app[REPOSITORY])
        with database_work(principal.organization_id):
            ctx = Ctx(
                request=request,
                principal=principal,
                path=_path_params(route, request),
                query=_query_params(route, request),
                body=await _read_body(route, request),
            )
            return await route.handler(ctx)

    handle.__name__ = route.operation_id
    return handle


def _path_params(route: Route, request: web.Request) -> dict[str, str]:
    values: dict[str, str] = {}
    for param in route.params:
        if param.location != "path":
            continue
        raw = request.match_info.get(param.name, "")
        if not is_storable(raw):
            raise ApiError(404, param.not_found)
        if param.schema.get("format") == "uuid":
            canonical = canonical_uuid(raw)
            if canonical is None:
                raise ApiError(404, param.not_found)
            values[param.name] = canonical
            continue
        try:
            validate(raw, param.schema, param.name)
        except ApiError:
            raise ApiError(404, param.not_found) from None
        values[param.name] = raw
    return values


def _query_params(route: Route, request: web.Request) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for param in route.params:
        if param.location != "query":
            continue
        raw = request.query.get(param.name)
        if raw is None:
            if param.required:
                raise ApiError(422, f"{param.name} is required")
            values[param.name] = param.default
            continue
        if not is_storable(raw):
            raise ApiError(422, f"{param.name}: {UNSTORABLE}")
        values[param.name] = parse_query_value(raw, param.schema, param.name)
    return values


async def _read_body(route: Route, request: web.Request) -> dict[str, Any]:
    if route.body is None:
        return {}
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise ApiError(413, f"Request body too large: at most {MAX_BODY_BYTES} bytes")
    raw = await request.read()
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, f"Request body too large: at most {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        raise ApiError(422, "body is required: send a JSON object")
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise ApiError(422, "body: must be UTF-8 encoded JSON") from None
    except (ValueError, RecursionError) as exc:
        raise ApiError(422, f"body: invalid JSON: {_short(exc)}") from None
    if not isinstance(value, dict):
        raise ApiError(422, "body: expected a JSON object")
    check_storable(value)
    validate(value, route.body, "")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _short(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc).split("\n", 1)[0][:200]
