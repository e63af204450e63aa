"""The number inventory the settings ask for: Telnyx when an API key is set, else the pool."""

from __future__ import annotations

from trunkline.carriers.inventory import InUseLookup, LocalPoolInventory, NumberInventory
from trunkline.carriers.telnyx_numbers import TelnyxNumberInventory
from trunkline.config import Settings


def open_inventory(settings: Settings, in_use: InUseLookup) -> NumberInventory:
    """Telnyx when ``settings.carriers.telnyx_api_key`` is set, else the local pool.

    Raises ValueError when a pool setting cannot be parsed.
    """
    if settings.carriers.telnyx_api_key:
        return TelnyxNumberInventory(
            settings.carriers.telnyx_api_url, settings.carriers.telnyx_api_key
        )
    return LocalPoolInventory.from_settings(settings, in_use)
