"""Serving the console: its files only, each with a strict Content-Security-Policy, nothing
from another origin, no inline script; and not at all when the operator turns it off."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser

import aiohttp
import pytest
from aiohttp import web

from tests.gateway.conftest import Trunkline
from trunkline import console
from trunkline.console.site import load_files


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


@pytest.fixture
async def site() -> AsyncIterator[aiohttp.ClientSession]:
    app = web.Application()
    console.add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as http:
            yield http
    finally:
        await runner.cleanup()


async def test_every_file_is_served_with_the_security_headers(site: aiohttp.ClientSession) -> None:
    files = load_files()
    assert {"index.html", "console.css", "js/main.js", "js/api.js"} <= set(files)
    for name, found in files.items():
        async with site.get(f"/console/{name}") as response:
            assert response.status == 200, name
            assert await response.read() == found.body
            headers = response.headers
            assert headers["Content-Type"] == found.content_type
            policy = headers["Content-Security-Policy"]
            assert "default-src 'self'" in policy and "script-src 'self'" in policy
            assert "frame-ancestors 'none'" in policy and "unsafe" not in policy
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert headers["Referrer-Policy"] == "no-referrer"
    async with site.get("/console/") as response:
        assert response.status == 200
        assert await response.read() == files["index.html"].body


async def test_the_bare_path_redirects_and_nothing_else_is_served(
    site: aiohttp.ClientSession,
) -> None:
    async with site.get("/console", allow_redirects=False) as response:
        assert response.status == 302 and response.headers["Location"] == "/console/"
    for path in ("/console/missing.js", "/console/../site.py", "/console/js/../../site.py"):
        async with site.get(path) as response:
            assert response.status == 404, path


def test_the_page_has_no_inline_script_and_loads_nothing_from_elsewhere() -> None:
    files = load_files()
    page = Tags()
    page.feed(files["index.html"].body.decode())
    scripts = [attrs for tag, attrs in page.tags if tag == "script"]
    assert scripts and all(attrs.get("src") for attrs in scripts)
    assert all(attrs.get("type") == "module" for attrs in scripts)
    for tag, attrs in page.tags:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        assert "style" not in attrs, (tag, attrs)
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            assert not re.match(r"^(https?:)?//", value), (tag, value)
    for name, found in files.items():
        text = found.body.decode()
        assert not re.search(r"""(import|from)\s*\(?\s*["'](https?:)?//""", text), name
        assert "innerHTML" not in text and "eval(" not in text, name


@pytest.mark.settings(console=False)
async def test_the_console_can_be_turned_off(trunkline: Trunkline) -> None:
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{trunkline.http_port}/console/"
        async with http.get(url) as response:
            assert response.status == 404
            assert await response.json() == {"detail": "Not Found"}


async def test_the_console_is_served_by_default(trunkline: Trunkline) -> None:
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{trunkline.http_port}/console/js/main.js"
        async with http.get(url) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/javascript")
