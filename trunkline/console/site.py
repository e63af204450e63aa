"""Serving the console's files: read once at start, each with a strict Content-Security-Policy.

The files ship inside the package (``static/``) and are read into memory when
the routes are added, so a request can only name one of them: any other path
under ``/console/`` is a 404, and nothing is read from disk per request. Every
answer forbids inline script, other origins and framing, and is not cached, so
an upgrade takes effect on the next load.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable

from aiohttp import web

ROOT = "/console"
STATIC_PACKAGE = "trunkline.console"
STATIC_DIR = "static"
INDEX = "index.html"

CONTENT_TYPES: Mapping[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    content_type: str


def load_files() -> dict[str, StaticFile]:
    """Every console file by its path under ``/console/`` (``js/main.js``)."""
    files: dict[str, StaticFile] = {}

    def walk(folder: Traversable, prefix: str) -> None:
        for entry in folder.iterdir():
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
                continue
            suffix = entry.name[entry.name.rfind(".") :] if "." in entry.name else ""
            content_type = CONTENT_TYPES.get(suffix)
            if content_type is not None:
                files[prefix + entry.name] = StaticFile(entry.read_bytes(), content_type)

    walk(resources.files(STATIC_PACKAGE).joinpath(STATIC_DIR), "")
    return files


def add_routes(app: web.Application) -> None:
    """``/console`` (redirect), ``/console/`` (the page) and ``/console/{file}``."""
    files = load_files()

    def answer(name: str) -> web.Response:
        found = files.get(name)
        if found is None:
            raise web.HTTPNotFound()
        return web.Response(body=found.body, content_type=None, headers=_headers(found))

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(ROOT + "/")

    async def index(request: web.Request) -> web.Response:
        return answer(INDEX)

    async def static_file(request: web.Request) -> web.Response:
        return answer(request.match_info["name"])

    app.router.add_get(ROOT, redirect)
    app.router.add_get(ROOT + "/", index)
    app.router.add_get(ROOT + "/{name:.+}", static_file)


def _headers(found: StaticFile) -> dict[str, str]:
    return {**SECURITY_HEADERS, "Content-Type": found.content_type}
