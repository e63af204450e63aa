"""A stored text as the JSON object the API returns and ``text.received`` events carry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trunkline.storage.models import Text

MediaUrl = Callable[[str], str]  # blob key -> presigned URL


def text_json(record: Text, media_url: MediaUrl) -> dict[str, Any]:
    return {
        "id": record.id,
        "direction": record.direction,
        "local_phone_number": record.local_phone_number,
        "remote_phone_number": record.remote_phone_number,
        "text": record.text,
        "type": record.type,
        "media": None
        if not record.media
        else [
            {"content_type": m.content_type, "size": m.size, "url": media_url(m.blob_key)}
            for m in record.media
        ],
        "status": record.status,
        "is_read": record.is_read,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
    }
