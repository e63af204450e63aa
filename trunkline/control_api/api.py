"""The route table of the Inkbox-compatible phone API, in registration order.

More specific paths come before parameterised ones that could also match
(``/texts/search`` before ``/texts/{text_id}``).
"""

from __future__ import annotations

from trunkline.control_api import (
    api_keys,
    byo,
    calls,
    console_stats,
    incoming_call_action,
    numbers,
    place_call,
    texts,
    webhook_deliveries,
    webhook_subscriptions,
)
from trunkline.control_api.route_table import Route

ROUTES: tuple[Route, ...] = (
    *numbers.ROUTES,
    *byo.ROUTES,
    *incoming_call_action.ROUTES,
    *place_call.ROUTES,
    *calls.ROUTES,
    *texts.ROUTES,
    *webhook_subscriptions.ROUTES,
    *webhook_deliveries.ROUTES,
    *api_keys.ROUTES,
    *console_stats.ROUTES,
)
