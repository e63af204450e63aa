"""The block a serving process logs once it listens: what runs, where, on what, and how safely.

One log record, several lines, so an operator reading the start of a log (or a
bug report) sees at once the versions, the HTTP, SIP and RTP addresses, the
data directory and database (its password hidden), the speech engines and
whether they are loaded, and every development or insecure setting that is on.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from importlib import metadata

from trunkline import __version__
from trunkline.config import LogLevel, Settings
from trunkline.storage import redact_url

LIBRARIES = ("aiohttp", "websockets", "numpy", "uvloop", "asyncpg", "faster-whisper", "piper-tts")
ALL_INTERFACES = ("0.0.0.0", "::", "")


def library_versions() -> str:
    """``aiohttp 3.10.5, websockets 13.1, …`` for the libraries that are installed."""
    found = []
    for name in LIBRARIES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def insecure_settings(settings: Settings) -> list[str]:
    """The development or insecure settings that are on, by their environment names."""
    found = []
    if settings.allow_insecure_urls:
        found.append("TRUNKLINE_ALLOW_INSECURE_URLS (ws:// and http:// agent/webhook URLs)")
    if settings.allow_private_targets:
        found.append("TRUNKLINE_ALLOW_PRIVATE_TARGETS (agent/webhook URLs on private addresses)")
    if any(network.prefixlen == 0 for network in settings.sip.trusted_sources):
        found.append("TRUNKLINE_SIP_TRUSTED_SOURCES (every source trusted without digest auth)")
    if settings.process.log_level is LogLevel.DEBUG:
        found.append("TRUNKLINE_LOG_LEVEL=debug (logs carry call details)")
    return found


def _listen(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    where = " (all interfaces)" if host in ALL_INTERFACES else ""
    return f"{shown}:{port}{where}"


def startup_block(
    settings: Settings,
    *,
    http_port: int,
    sip_address: tuple[str, int],
    media_address: str,
    speech: Mapping[str, str],
) -> str:
    """The lines of the start-up block, joined by newlines (the first is the summary)."""
    media = settings.media
    pairs = len(range(media.rtp_port_min + media.rtp_port_min % 2, media.rtp_port_max, 2))
    engines = ", ".join(f"{name} {state}" for name, state in speech.items()) or "off"
    insecure = insecure_settings(settings)
    lines = [
        f"trunkline {__version__} serving",
        f"  versions   Python {platform.python_version()}; {library_versions()}",
        f"  HTTP       {_listen(settings.api.host, http_port)}; API, /metrics, media streams",
        f"  SIP        udp {_listen(sip_address[0], sip_address[1])}",
        f"  RTP        ports {media.rtp_port_min}-{media.rtp_port_max}"
        f" ({pairs} RTP/RTCP pairs: {pairs} concurrent SIP calls); media address {media_address}",
        *_shared_port_line(settings),
        f"  data       {settings.data_dir}",
        f"  database   {redact_url(settings.database_url)}",
        f"  speech     {engines}",
        f"  insecure   {'; '.join(insecure) if insecure else 'none'}",
    ]
    return "\n".join(lines)


def _shared_port_line(settings: Settings) -> list[str]:
    port = settings.shared_rtp_port
    if not port:
        return []
    return [
        f"  RTP shared port {port} (RTCP {port + 1}) for inbound calls whose media comes from"
        " their SDP address"
    ]
