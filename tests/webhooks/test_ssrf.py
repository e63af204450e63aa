"""The SSRF guard: hostile URLs refused, one resolution per connection, loopback only when allowed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import aiohttp
import pytest
from aiohttp import web

from trunkline.webhooks.ssrf import (
    GuardedResolver,
    UnsafeTarget,
    check_url_literal,
    connector_options,
    resolve_target,
)

HOSTILE = [
    "http://127.0.0.1/",
    "http://127.8.9.10:8080/x",
    "http://localhost/",
    "http://0.0.0.0/",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",
    "http://100.127.255.254/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://[::1]/",
    "http://[::]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[fd00:ec2::254]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::127.0.0.1]/",
    "http://[64:ff9b::a00:1]/",
    "http://[2002:7f00:1::]/",
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
    "http://[ff02::1]/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0x7f.1/",
    "http://017700000001/",
    "http://0177.0.0.1/",
    "http://127.1/",
    "http://10.1/",
    "http://user:pass@example.com/",
    "ftp://example.com/",
    "file:///etc/passwd",
    "gopher://example.com/",
    "http:///nohost",
    "http://exa%6dple.com/",
    "http://internal.example/",  # resolves (below) to a private address
    "http://mixed.example/",  # one public and one private address
    "http://metadata.example/",
    "http://mapped.example/",
]

ZONE = {
    "internal.example": ["10.1.2.3"],
    "mixed.example": ["93.184.216.34", "192.168.0.10"],
    "metadata.example": ["169.254.169.254"],
    "mapped.example": ["::ffff:10.0.0.1"],
    "public.example": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
}


async def zone_lookup(host: str, port: int) -> Sequence[str]:
    if host not in ZONE:
        raise OSError("no such host")
    return ZONE[host]


@pytest.mark.parametrize("url", HOSTILE)
async def test_hostile_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsafeTarget):
        await resolve_target(url, allow_private=False, lookup=zone_lookup)


async def test_public_names_resolve_to_a_checked_address() -> None:
    target = await resolve_target(
        "https://public.example:8443/hook", allow_private=False, lookup=zone_lookup
    )
    assert (target.host, target.port, target.address) == ("public.example", 8443, "93.184.216.34")
    literal = await resolve_target("wss://93.184.216.34/ws", allow_private=False)
    assert (literal.port, literal.address) == (443, "93.184.216.34")


async def test_private_targets_are_allowed_only_when_the_operator_says_so() -> None:
    target = await resolve_target(
        "http://internal.example/", allow_private=True, lookup=zone_lookup
    )
    assert target.address == "10.1.2.3"
    with pytest.raises(UnsafeTarget):
        await resolve_target("http://0.0.0.0/", allow_private=True)
    with pytest.raises(UnsafeTarget):
        await resolve_target("http://2130706433/", allow_private=True)


@pytest.fixture
async def loopback_server() -> AsyncIterator[str]:
    app = web.Application()
    hits: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        hits.append(request.host)
        return web.Response(text="reached")

    app.router.add_get("/", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_guarded_connector_reaches_loopback_only_when_allowed(loopback_server: str) -> None:
    port = loopback_server

    async def lookup(host: str, _: int) -> Sequence[str]:
        return ["127.0.0.1"]

    url = f"http://service.test:{port}/"
    for allow, reachable in ((True, True), (False, False)):
        connector = aiohttp.TCPConnector(**connector_options(allow, lookup))
        async with aiohttp.ClientSession(connector=connector) as session:
            if reachable:
                async with session.get(url) as response:
                    assert await response.text() == "reached"
            else:
                with pytest.raises(aiohttp.ClientError):
                    async with session.get(url):
                        pass


async def test_a_dns_answer_that_switches_to_loopback_cannot_be_reached(
    loopback_server: str,
) -> None:
    """The name is resolved once, by the guard, at connect time: no second lookup to race."""
    answers = iter([["93.184.216.34"], ["127.0.0.1"], ["127.0.0.1"]])
    lookups: list[str] = []

    async def rebinding(host: str, _: int) -> Sequence[str]:
        lookups.append(host)
        return next(answers)

    url = f"http://rebind.test:{loopback_server}/"
    target = await resolve_target(url, allow_private=False, lookup=rebinding)
    assert target.address == "93.184.216.34"  # a pre-check would have passed …
    connector = aiohttp.TCPConnector(**connector_options(False, rebinding))
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(aiohttp.ClientError):  # … but the connection checks its own answer
            async with session.get(url):
                pass
    assert len(lookups) == 2


def test_literal_hosts_are_checked_before_aiohttp_skips_the_resolver() -> None:
    with pytest.raises(UnsafeTarget):
        check_url_literal("http://127.0.0.1:9/", allow_private=False)
    assert check_url_literal("http://127.0.0.1:9/", allow_private=True).port == 9
    assert check_url_literal("https://hooks.example.com/x", allow_private=False).port == 443


async def test_resolver_reports_refusals_as_connection_errors() -> None:
    resolver = GuardedResolver(allow_private=False, lookup=zone_lookup)
    with pytest.raises(OSError, match="private address"):
        await resolver.resolve("internal.example", 80)
    results = await resolver.resolve("public.example", 443)
    assert [r["host"] for r in results] == ZONE["public.example"]
