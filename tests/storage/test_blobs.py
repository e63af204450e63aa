"""Blob stores: the data directory with signed links, and an S3-compatible bucket."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from trunkline.crypto import UrlSigner
from trunkline.storage.blobs import InvalidBlobKey, LocalBlobStore, S3BlobStore


def test_keys_must_be_plain_relative_paths(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path, UrlSigner(b"k" * 32), "http://127.0.0.1:8080")
    for key in ("../etc/passwd", "/abs", "a//b", "a/../b", ".hidden", "a b", "x" * 600, ""):
        with pytest.raises(InvalidBlobKey):
            store.path_for(key)


async def test_local_links_verify_until_they_expire(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path, UrlSigner(b"k" * 32), "http://127.0.0.1:8080/")
    await store.put("mms/n/1.png", b"data", "image/png")
    assert await asyncio.to_thread(_written, tmp_path) == (b"data", [])
    now = time.time()
    url = urlsplit(store.presigned_url("mms/n/1.png", 3600, now=now))
    assert url.path == "/media/mms/n/1.png"
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert store.verify("mms/n/1.png", query["expires"], query["signature"], now=now + 3599)
    assert not store.verify("mms/n/1.png", query["expires"], query["signature"], now=now + 3601)
    assert not store.verify("mms/n/2.png", query["expires"], query["signature"], now=now)
    forged = str(int(query["expires"]) + 3600)
    assert not store.verify("mms/n/1.png", forged, query["signature"], now=now)


def _written(root: Path) -> tuple[bytes, list[Path]]:
    return (root / "mms/n/1.png").read_bytes(), list(root.rglob("*.tmp"))


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    """An S3-API server on loopback (moto's server; S3 itself is not reachable from tests)."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


async def test_s3_store_puts_objects_and_hands_out_s3_presigned_links(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    store = S3BlobStore(
        "trunkline-media",
        endpoint_url=s3_endpoint,
        region="us-east-1",
        access_key_id="test-key",
        secret_access_key="test-secret",
    )
    try:
        client = await store._s3()
        await client.create_bucket(Bucket="trunkline-media")
        await store.put("mms/n/photo.png", b"\x89PNG-bytes", "image/png")
        url = store.presigned_url("mms/n/photo.png", 3600)
        query = parse_qs(urlsplit(url).query)
        assert query["X-Amz-Expires"] == ["3600"] and "X-Amz-Signature" in query
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert response.status == 200
            assert await response.read() == b"\x89PNG-bytes"
            assert response.headers["Content-Type"] == "image/png"
    finally:
        await store.close()
