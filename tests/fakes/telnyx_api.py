"""A local HTTP server speaking the Telnyx API v2 number endpoints, for tests.

It keeps an in-memory catalogue of available numbers and an account of owned
numbers, checks ``Authorization: Bearer <key>`` on every request, and answers
in Telnyx's documented shapes (``{"data": ...}``, errors as
``{"errors": [{"code", "title", "detail"}]}``). Failures can be injected per
endpoint to exercise the client's error paths.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TYPE_NAMES = ("local", "toll-free")


@dataclass(slots=True)
class AvailableNumber:
    phone_number: str
    phone_number_type: str  # "local" | "toll-free"
    state: str | None = None
    country_code: str = "US"

    def as_json(self) -> dict[str, Any]:
        regions = [{"region_type": "country_code", "region_name": self.country_code}]
        if self.state:
            regions.append({"region_type": "state", "region_name": self.state})
        return {
            "record_type": "available_phone_number",
            "phone_number": self.phone_number,
            "best_effort": False,
            "reservable": False,
            "quickship": True,
            "region_information": regions,
            "cost_information": {"currency": "USD", "monthly_cost": "1.00", "upfront_cost": "1.00"},
            "features": [{"name": "voice"}, {"name": "sms"}],
        }


@dataclass(slots=True)
class Failure:
    status: int
    code: str
    title: str
    detail: str


@dataclass
class FakeTelnyx:
    """State of the fake account; ``app()`` serves it."""

    api_key: str
    available: list[AvailableNumber] = field(default_factory=list)
    owned: dict[str, str] = field(default_factory=dict)  # phone number id -> E.164
    orders: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    failures: dict[str, Failure] = field(default_factory=dict)  # endpoint name -> failure
    order_status: str = "success"
    messages: list[dict[str, Any]] = field(default_factory=list)  # bodies sent to /v2/messages

    def fail(self, endpoint: str, status: int, title: str, detail: str = "") -> None:
        """Make the next request to ``endpoint`` (search|order|lookup|delete) fail once."""
        self.failures[endpoint] = Failure(status, str(10000 + status), title, detail)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/v2/available_phone_numbers", self._search)
        app.router.add_post("/v2/number_orders", self._order)
        app.router.add_get("/v2/phone_numbers", self._lookup)
        app.router.add_delete("/v2/phone_numbers/{id}", self._delete)
        app.router.add_post("/v2/messages", self._message)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path, dict(request.query)))
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _errors(401, "10009", "Authentication failed", "The API key is not valid.")
        response: web.StreamResponse = await handler(request)
        return response

    def _injected(self, endpoint: str) -> web.Response | None:
        failure = self.failures.pop(endpoint, None)
        if failure is None:
            return None
        return _errors(failure.status, failure.code, failure.title, failure.detail)

    async def _message(self, request: web.Request) -> web.Response:
        if (failed := self._injected("message")) is not None:
            return failed
        body = await request.json()
        if not isinstance(body, dict) or not all(body.get(k) for k in ("from", "to", "text")):
            return _errors(422, "10004", "Missing required parameter", "from, to and text")
        self.messages.append(body)
        return web.json_response(
            {
                "data": {
                    "record_type": "message",
                    "id": str(uuid.uuid4()),
                    "direction": "outbound",
                    "type": "SMS",
                    "from": {"phone_number": body["from"]},
                    "to": [{"phone_number": body["to"], "status": "queued"}],
                    "text": body["text"],
                }
            }
        )

    async def _search(self, request: web.Request) -> web.Response:
        if (failed := self._injected("search")) is not None:
            return failed
        query = request.query
        number_type = query.get("filter[phone_number_type]")
        if number_type is not None and number_type not in TYPE_NAMES:
            return _errors(422, "10015", "Invalid filter", "filter[phone_number_type] is not valid")
        state = query.get("filter[administrative_area]")
        country = query.get("filter[country_code]")
        try:
            limit = int(query.get("filter[limit]", "10"))
        except ValueError:
            return _errors(422, "10015", "Invalid filter", "filter[limit] must be an integer")
        owned = set(self.owned.values())
        matches = [
            n
            for n in self.available
            if n.phone_number not in owned
            and (number_type is None or n.phone_number_type == number_type)
            and (state is None or n.state == state)
            and (country is None or n.country_code == country)
        ][: max(limit, 0)]
        return web.json_response(
            {
                "data": [n.as_json() for n in matches],
                "meta": {"total_results": len(matches), "best_effort_results": 0},
            }
        )

    async def _order(self, request: web.Request) -> web.Response:
        if (failed := self._injected("order")) is not None:
            return failed
        try:
            body = json.loads(await request.read())
            wanted = [str(item["phone_number"]) for item in body["phone_numbers"]]
        except (ValueError, KeyError, TypeError):
            return _errors(422, "10015", "Invalid parameter", "phone_numbers is required")
        catalogue = {n.phone_number for n in self.available} - set(self.owned.values())
        for number in wanted:
            if number not in catalogue:
                return _errors(422, "85001", "Number not available", f"{number} cannot be ordered")
        order_id = str(uuid.uuid4())
        numbers = []
        for number in wanted:
            if self.order_status == "success":
                self.owned[str(uuid.uuid4())] = number
            numbers.append(
                {
                    "id": str(uuid.uuid4()),
                    "record_type": "number_order_phone_number",
                    "phone_number": number,
                    "status": self.order_status,
                }
            )
        order = {
            "id": order_id,
            "record_type": "number_order",
            "phone_numbers": numbers,
            "phone_numbers_count": len(numbers),
            "status": self.order_status,
            "requirements_met": True,
            "created_at": "2026-01-01T00:00:00.000000Z",
            "updated_at": "2026-01-01T00:00:00.000000Z",
        }
        self.orders.append(order)
        return web.json_response({"data": order})

    async def _lookup(self, request: web.Request) -> web.Response:
        if (failed := self._injected("lookup")) is not None:
            return failed
        wanted = request.query.get("filter[phone_number]")
        data = [
            {"id": pid, "record_type": "phone_number", "phone_number": number, "status": "active"}
            for pid, number in self.owned.items()
            if wanted is None or number == wanted
        ]
        return web.json_response({"data": data, "meta": {"total_results": len(data)}})

    async def _delete(self, request: web.Request) -> web.Response:
        if (failed := self._injected("delete")) is not None:
            return failed
        pid = request.match_info["id"]
        number = self.owned.pop(pid, None)
        if number is None:
            return _errors(404, "10005", "Resource not found", "The phone number was not found.")
        return web.json_response(
            {"data": {"id": pid, "record_type": "phone_number", "phone_number": number}}
        )


def _errors(status: int, code: str, title: str, detail: str) -> web.Response:
    return web.json_response(
        {"errors": [{"code": code, "title": title, "detail": detail}]}, status=status
    )
