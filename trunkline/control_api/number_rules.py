"""Rules shared by the endpoints that create and change phone numbers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trunkline.control_api.errors import ApiError

CAP_RETRY_AFTER_SECONDS = 60
IDENTITY_SCOPE_FORBIDDEN = "Identity-scoped tokens can only act for their own agent identity"
NUMBER_OPTION_FIELDS = ("agent_protocol", "agent_audio", "recording_enabled")


def cap_reached(cap: int) -> ApiError:
    """429 for an organisation at its active-number cap (seed 001 wording)."""
    return ApiError(
        429,
        f"Organization already has {cap} active phone numbers. "
        "Release an existing number before provisioning a new one",
        headers={"Retry-After": str(CAP_RETRY_AFTER_SECONDS)},
    )


def number_options(body: Mapping[str, Any]) -> dict[str, Any]:
    """The gateway options (agent protocol, audio format, recording) present in ``body``."""
    return {name: body[name] for name in NUMBER_OPTION_FIELDS if name in body}
