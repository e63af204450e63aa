"""Telnyx number search, ordering and release over the Telnyx REST API v2.

Endpoints used (Telnyx API v2, JSON, ``Authorization: Bearer <API key>``):

- ``GET /v2/available_phone_numbers?filter[phone_number_type]=local|toll-free
  &filter[country_code]=US&filter[administrative_area]=NY&filter[limit]=1``
  → ``{"data": [{"phone_number", "region_information": [{"region_type",
  "region_name"}], ...}]}``
- ``POST /v2/number_orders {"phone_numbers": [{"phone_number": ...}]}``
  → ``{"data": {"id", "status", "phone_numbers": [...]}}``
- ``GET /v2/phone_numbers?filter[phone_number]=+1...`` → ``{"data": [{"id", ...}]}``
- ``DELETE /v2/phone_numbers/{id}``

Errors come back as ``{"errors": [{"code", "title", "detail"}]}``; they become
``CarrierError`` with the first error's title and detail. The API key is sent
only in the header and never appears in messages or logs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp

from trunkline.carriers.inventory import (
    AcquiredNumber,
    CarrierError,
    NoInventory,
    NumberInventory,
)
from trunkline.carriers.numbering import country_for, is_e164, state_for
from trunkline.storage.models import NumberType

log = logging.getLogger("trunkline.carriers.telnyx")

MAX_RESPONSE_BYTES = 1024 * 1024  # Telnyx answers are small; refuse anything larger
REQUEST_TIMEOUT_SECONDS = 15.0
TELNYX_NUMBER_TYPES: Mapping[NumberType, str] = {"local": "local", "toll_free": "toll-free"}
FAILED_ORDER_STATUSES = frozenset({"failure", "failed", "cancelled", "canceled"})


def describe_errors(status: int, body: Any) -> str:
    """A one-line description of a Telnyx error response (``errors[0]`` title/detail)."""
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        parts = [str(first[key]) for key in ("code", "title", "detail") if first.get(key)]
        if parts:
            return f"Telnyx API error {status}: {' - '.join(parts)}"
    return f"Telnyx API error {status}"


class TelnyxNumbersClient:
    """The four Telnyx number endpoints; every failure is a ``CarrierError``."""

    def __init__(
        self,
        api_url: str,
        api_key: str,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout_seconds: float = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        self._base = api_url.rstrip("/")
        self._api_key = api_key
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> Any:
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}
        try:
            async with self._client().request(
                method,
                f"{self._base}{path}",
                params=dict(params or {}),
                json=body,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                raw = await response.content.read(MAX_RESPONSE_BYTES + 1)
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise CarrierError(f"Telnyx API unreachable: {type(exc).__name__}") from None
        if len(raw) > MAX_RESPONSE_BYTES:
            raise CarrierError("Telnyx API response too large")
        try:
            decoded = json.loads(raw) if raw else None
        except ValueError:
            decoded = None
        if not 200 <= status < 300:
            raise CarrierError(describe_errors(status, decoded))
        if raw and decoded is None:
            raise CarrierError("Telnyx API returned a body that is not JSON")
        return decoded

    async def search_available(
        self, number_type: NumberType, state: str | None, limit: int = 1
    ) -> list[dict[str, Any]]:
        params = {
            "filter[phone_number_type]": TELNYX_NUMBER_TYPES[number_type],
            "filter[country_code]": "US",
            "filter[limit]": str(limit),
        }
        if state is not None and number_type == "local":
            params["filter[administrative_area]"] = state
        body = await self._request("GET", "/v2/available_phone_numbers", params=params)
        return _data_list(body)

    async def create_order(self, number: str) -> dict[str, Any]:
        body = await self._request(
            "POST", "/v2/number_orders", body={"phone_numbers": [{"phone_number": number}]}
        )
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise CarrierError("Telnyx number order response has no data object")
        return data

    async def find_number_ids(self, number: str) -> list[str]:
        body = await self._request(
            "GET", "/v2/phone_numbers", params={"filter[phone_number]": number}
        )
        return [
            str(item["id"])
            for item in _data_list(body)
            if item.get("id") and item.get("phone_number", number) == number
        ]

    async def delete_number(self, phone_number_id: str) -> None:
        await self._request("DELETE", f"/v2/phone_numbers/{phone_number_id}")


def _data_list(body: Any) -> list[dict[str, Any]]:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise CarrierError("Telnyx API response has no data list")
    return [item for item in data if isinstance(item, dict)]


def _region(item: Mapping[str, Any], region_type: str) -> str | None:
    regions = item.get("region_information")
    if not isinstance(regions, list):
        return None
    for region in regions:
        if isinstance(region, dict) and region.get("region_type") == region_type:
            name = region.get("region_name")
            return str(name) if name else None
    return None


class TelnyxNumberInventory(NumberInventory):
    """Search Telnyx inventory, order the first match, delete numbers on release."""

    name = "telnyx"

    def __init__(
        self,
        api_url: str,
        api_key: str,
        *,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.client = TelnyxNumbersClient(api_url, api_key, session=session)

    async def acquire(self, number_type: NumberType, state: str | None) -> AcquiredNumber:
        candidates = await self.client.search_available(number_type, state)
        item = next((c for c in candidates if is_e164(str(c.get("phone_number")))), None)
        if item is None:
            wanted = number_type if state is None else f"{number_type} in {state}"
            raise NoInventory(f"No available numbers matching the criteria ({wanted})")
        number = str(item["phone_number"])
        order = await self.client.create_order(number)
        status = str(order.get("status", ""))
        if status in FAILED_ORDER_STATUSES:
            raise CarrierError(f"Telnyx number order {status}")
        order_id = order.get("id")
        log.info(
            "ordered number", extra={"carrier": "telnyx", "order_id": order_id, "status": status}
        )
        local_state = (
            None if number_type == "toll_free" else (_region(item, "state") or state_for(number))
        )
        return AcquiredNumber(
            number=number,
            country=_region(item, "country_code") or country_for(number),
            state=local_state,
            carrier_order_id=str(order_id) if order_id is not None else None,
        )

    async def release(self, number: str) -> None:
        ids = await self.client.find_number_ids(number)
        if not ids:
            log.warning("released number is not on the Telnyx account", extra={"carrier": "telnyx"})
        for phone_number_id in ids:
            await self.client.delete_number(phone_number_id)

    async def close(self) -> None:
        await self.client.close()
