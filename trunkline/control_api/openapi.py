"""The OpenAPI 3.1 document, generated from the route table (``GET /api/v1/phone/openapi.json``).

Every ``Route`` becomes one operation with its parameters, request body and
documented responses; the statuses the shared wrapper can produce (401 always,
422 for parameters or a body, 413 for a body) are added here so each
operation lists everything it can answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

import trunkline
from trunkline.control_api.errors import API_PREFIX
from trunkline.control_api.route_table import Reply, Route
from trunkline.control_api.shapes import COMPONENTS, ref

OPENAPI_PATH = f"{API_PREFIX}/openapi.json"
SECURITY: list[dict[str, list[str]]] = [{"ServiceToken": []}, {"ApiKey": []}]
_ERROR_CONTENT = {"application/json": {"schema": ref("Error")}}


def _response(reply: Reply, status: int) -> dict[str, Any]:
    entry: dict[str, Any] = {"description": reply.description}
    if reply.schema is not None:
        entry["content"] = {"application/json": {"schema": reply.schema}}
    elif status >= 400:
        entry["content"] = _ERROR_CONTENT
    if reply.headers:
        entry["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in reply.headers.items()
        }
    return entry


def _operation(route: Route) -> dict[str, Any]:
    responses = {str(status): _response(reply, status) for status, reply in route.responses.items()}
    responses.setdefault("401", _response(Reply("Missing or unknown service token"), 401))
    has_query = any(p.location == "query" for p in route.params)
    if route.body is not None or has_query:
        responses.setdefault("422", _response(Reply("Validation failed"), 422))
    if route.body is not None:
        responses.setdefault("413", _response(Reply("Request body too large"), 413))
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.tag],
        "security": SECURITY,
        "responses": dict(sorted(responses.items())),
    }
    if route.description:
        operation["description"] = route.description
    if route.params:
        operation["parameters"] = [
            {
                "name": p.name,
                "in": p.location,
                "required": p.location == "path" or p.required,
                "description": p.description,
                "schema": p.schema,
            }
            for p in route.params
        ]
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": route.body}},
        }
    return operation


def build_document(routes: Sequence[Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.full_path, {})[route.method.lower()] = _operation(route)
    paths[OPENAPI_PATH] = {
        "get": {
            "operationId": "openapi_document",
            "summary": "This document",
            "tags": ["Meta"],
            "security": [],
            "responses": {
                "200": {
                    "description": "The OpenAPI 3.1 document",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "trunkline Phone API",
            "version": trunkline.__version__,
            "description": "Inkbox-compatible phone API: numbers, calls, transcripts, texts.",
        },
        "paths": paths,
        "components": {
            "schemas": COMPONENTS,
            "securitySchemes": {
                "ServiceToken": {"type": "apiKey", "in": "header", "name": "X-Service-Token"},
                "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }


def add_document_route(app: web.Application, routes: Sequence[Route]) -> None:
    document = build_document(routes)

    async def openapi_document(request: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get(OPENAPI_PATH, openapi_document, allow_head=False)
