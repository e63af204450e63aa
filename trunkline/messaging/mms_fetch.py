"""Fetching MMS media from the carrier into trunkline's blob store: capped, typed, guarded.

Every hop of a redirect chain is checked by the SSRF guard (the session's
resolver checks names; literal addresses are checked here), at most
``MAX_REDIRECTS`` hops are followed, the body may not exceed
``MAX_MEDIA_BYTES`` and its content type must be one MMS carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin

import aiohttp

from trunkline.webhooks.ssrf import UnsafeTarget, check_url_literal

MAX_MEDIA_BYTES = 5 * 1024 * 1024
MAX_REDIRECTS = 3
TIMEOUT_SECONDS = 20.0
ALLOWED_TYPES = (
    "image/",
    "audio/",
    "video/",
    "text/plain",
    "text/vcard",
    "text/x-vcard",
    "application/pdf",
)
EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "audio/amr": ".amr",
    "audio/mpeg": ".mp3",
    "video/mp4": ".mp4",
    "video/3gpp": ".3gp",
    "text/plain": ".txt",
    "text/vcard": ".vcf",
    "application/pdf": ".pdf",
}


class MediaError(Exception):
    """The media could not be fetched or is not acceptable."""


@dataclass(frozen=True, slots=True)
class FetchedMedia:
    data: bytes
    content_type: str

    @property
    def extension(self) -> str:
        return EXTENSIONS.get(self.content_type, ".bin")


class MediaFetcher:
    def __init__(self, session: aiohttp.ClientSession, *, allow_private: bool) -> None:
        self._session = session
        self._allow_private = allow_private
        self._timeout = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)

    async def fetch(self, url: str) -> FetchedMedia:
        for _ in range(MAX_REDIRECTS + 1):
            try:
                check_url_literal(url, allow_private=self._allow_private)
                async with self._session.get(
                    url, allow_redirects=False, timeout=self._timeout
                ) as response:
                    if response.status in (301, 302, 303, 307, 308):
                        location = response.headers.get("Location")
                        if not location:
                            raise MediaError("redirect without a Location")
                        url = urljoin(url, location)
                        continue
                    if response.status != 200:
                        raise MediaError(f"media fetch answered HTTP {response.status}")
                    content_type = response.content_type.lower()
                    if not content_type.startswith(ALLOWED_TYPES):
                        raise MediaError(f"content type {content_type!r} is not accepted")
                    if (response.content_length or 0) > MAX_MEDIA_BYTES:
                        raise MediaError("media is larger than the limit")
                    data = await response.content.read(MAX_MEDIA_BYTES + 1)
                    if len(data) > MAX_MEDIA_BYTES:
                        raise MediaError("media is larger than the limit")
                    return FetchedMedia(data, content_type)
            except UnsafeTarget as exc:
                raise MediaError(f"refused: {exc}") from None
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise MediaError(f"media fetch failed: {type(exc).__name__}: {exc}") from None
        raise MediaError("too many redirects")
