"""Presigned media links: the URL the API hands out for a blob, and ``GET /media/{key}``
serving the file behind one (MMS media, recordings)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from trunkline.control_api.keys import BLOB_STORE
from trunkline.storage.blobs import MEDIA_ROUTE_PREFIX, BlobStore, InvalidBlobKey, LocalBlobStore

MEDIA_URL_TTL_SECONDS = 3600


def presigner(blobs: BlobStore) -> Callable[[str], str]:
    """Blob key → a presigned URL valid for an hour (MMS media, recordings)."""

    def presign(blob_key: str) -> str:
        return blobs.presigned_url(blob_key, MEDIA_URL_TTL_SECONDS)

    return presign


async def get_media(request: web.Request) -> web.StreamResponse:
    key = request.match_info["key"]
    expires = request.query.get("expires", "")
    signature = request.query.get("signature", "")
    store = request.app[BLOB_STORE]
    if not isinstance(store, LocalBlobStore):
        return web.json_response({"detail": "Not found"}, status=404)  # links point at S3
    try:
        path = store.path_for(key)
    except InvalidBlobKey:
        return web.json_response({"detail": "Not found"}, status=404)
    # Signatures are ASCII; anything else cannot match (and compare_digest refuses it).
    if not (expires.isascii() and signature.isascii()) or not store.verify(key, expires, signature):
        return web.json_response({"detail": "Link expired or signature invalid"}, status=403)
    if not path.is_file():
        return web.json_response({"detail": "Not found"}, status=404)
    return web.FileResponse(path, headers={"Cache-Control": "private, max-age=300"})


def add_routes(app: web.Application) -> None:
    app.router.add_get(MEDIA_ROUTE_PREFIX + "{key:.+}", get_media)
