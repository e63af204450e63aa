"""Files trunkline serves by presigned URL (MMS media, recordings).

Two stores behind one interface: the data directory (default), served by
trunkline at ``/media/{key}`` with HMAC-signed expiring links, or an
S3-compatible bucket whose own presigned URLs are handed out. Keys are
relative paths of safe characters; local writes go to a temporary file that
is renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import abc
import asyncio
import os
import re
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from trunkline.crypto import UrlSigner
from trunkline.data_dir import PRIVATE_FILE_MODE, make_private_dirs

MEDIA_ROUTE_PREFIX = "/media/"
_SAFE_KEY = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$")
MAX_KEY_LENGTH = 512


class InvalidBlobKey(ValueError):
    """A key that is not a plain relative path of safe characters."""


def check_key(key: str) -> str:
    if len(key) > MAX_KEY_LENGTH or not _SAFE_KEY.match(key) or ".." in key.split("/"):
        raise InvalidBlobKey(f"invalid blob key {key[:80]!r}")
    return key


class BlobStore(abc.ABC):
    @abc.abstractmethod
    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store ``data`` under ``key`` (replacing what was there), without blocking the loop."""

    @abc.abstractmethod
    def presigned_url(self, key: str, ttl_seconds: int, now: float | None = None) -> str:
        """A link that serves the blob until ``ttl_seconds`` from now."""

    async def close(self) -> None:
        return None


class LocalBlobStore(BlobStore):
    def __init__(self, root: Path, signer: UrlSigner, public_url: str) -> None:
        self.root = root
        self._signer = signer
        self._public_url = public_url.rstrip("/")

    def path_for(self, key: str) -> Path:
        return self.root / check_key(key)

    def put_sync(self, key: str, data: bytes) -> Path:
        path = self.path_for(key)
        make_private_dirs(path.parent)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        with os.fdopen(os.open(temporary, flags, PRIVATE_FILE_MODE), "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        return path

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self.put_sync, key, data)

    def presigned_url(self, key: str, ttl_seconds: int, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + ttl_seconds)
        route = MEDIA_ROUTE_PREFIX + check_key(key)
        query = urlencode(self._signer.sign(route, expires))
        return f"{self._public_url}{quote(route)}?{query}"

    def verify(self, key: str, expires: str, signature: str, now: float | None = None) -> bool:
        route = MEDIA_ROUTE_PREFIX + key
        return self._signer.verify(route, expires, signature, time.time() if now is None else now)


class S3BlobStore(BlobStore):
    """An S3-compatible bucket (AWS, MinIO, …) through aiobotocore; links are S3's own."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None,
        region: str,
        access_key_id: str | None,
        secret_access_key: str | None,
    ) -> None:
        self.bucket = bucket
        self._options: dict[str, Any] = {
            "region_name": region,
            "endpoint_url": endpoint_url or None,
            "aws_access_key_id": access_key_id or None,
            "aws_secret_access_key": secret_access_key or None,
        }
        self._stack = AsyncExitStack()
        self._client: Any = None
        self._client_lock = asyncio.Lock()
        self._presigner: Any = None

    async def _s3(self) -> Any:
        async with self._client_lock:
            if self._client is None:
                from aiobotocore.session import get_session

                self._client = await self._stack.enter_async_context(
                    get_session().create_client("s3", **self._options)
                )
        return self._client

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        client = await self._s3()
        await client.put_object(
            Bucket=self.bucket, Key=check_key(key), Body=data, ContentType=content_type
        )

    def presigned_url(self, key: str, ttl_seconds: int, now: float | None = None) -> str:
        if self._presigner is None:  # signing is local computation: a plain botocore client
            import botocore.session
            from botocore.config import Config

            self._presigner = botocore.session.get_session().create_client(
                "s3", config=Config(signature_version="s3v4"), **self._options
            )
        url: str = self._presigner.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": check_key(key)},
            ExpiresIn=ttl_seconds,
        )
        return url

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None
