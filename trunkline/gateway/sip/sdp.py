"""SDP (RFC 4566) for one audio stream, and offer/answer (RFC 3264) for G.711/G.722 + DTMF.

trunkline offers and accepts PCMU (payload type 0) and PCMA (8) at 8 kHz and
G.722 (9; ``G722/8000`` in SDP, though it carries 16 kHz audio — RFC 3551's
historical clock rate) with RFC 4733 ``telephone-event``, ptime 20; which of
them, and in which order, is ``TRUNKLINE_SIP_CODECS``. The answer picks the
first codec of the offer that is enabled and echoes the offer's
telephone-event payload type. Hold is ``a=sendonly``/``a=inactive`` or a
0.0.0.0 connection.

A ``c=`` line must be ``IN IP4`` or ``IN IP6`` with an address of that family
or a host name (RFC 4566 §5.7): anything else, like ``999.1.1.1`` or
``bad..host``, is an SdpError (488). A host name is kept as it came, with its
``address_type``; the gateway resolves it before answering.

The transport profile (``RTP/AVP`` or ``RTP/SAVP``) and any ``a=crypto`` lines
are kept for SRTP negotiation (``sdes``), and written back by ``build_sdp``.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

CODECS = {0: "PCMU", 8: "PCMA", 9: "G722"}
CODEC_PAYLOAD_TYPES = {name: pt for pt, name in CODECS.items()}
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
DEFAULT_EVENT_PAYLOAD_TYPE = 101
ADDRESS_TYPES = ("IP4", "IP6")
# A DNS name: dot-separated labels of letters, digits and inner hyphens (RFC 1123 §2.1).
_HOST_NAME = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?$")


class SdpError(ValueError):
    """An SDP body trunkline cannot use (answer 488 Not Acceptable Here)."""


@dataclass(slots=True)
class MediaDescription:
    address: str
    port: int
    payload_types: list[int]
    rtpmap: dict[int, str] = field(default_factory=dict)  # pt -> "PCMU/8000"
    fmtp: dict[int, str] = field(default_factory=dict)
    direction: str = "sendrecv"
    ptime: int | None = None
    address_type: str = "IP4"  # of the c= line: "IP4" or "IP6"
    profile: str = "RTP/AVP"
    crypto: list[str] = field(default_factory=list)  # a=crypto values (SDES, RFC 4568)
    ssrc: list[int] = field(default_factory=list)  # distinct a=ssrc ids (RFC 5576)

    def encoding(self, payload_type: int) -> str:
        """Encoding name of a payload type (static types need no rtpmap)."""
        if payload_type in self.rtpmap:
            return self.rtpmap[payload_type].split("/")[0].upper()
        return CODECS.get(payload_type, "")

    def clock_rate(self, payload_type: int) -> int:
        mapping = self.rtpmap.get(payload_type, "")
        parts = mapping.split("/")
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 8000

    @property
    def on_hold(self) -> bool:
        return self.direction in ("sendonly", "inactive") or self.address in ("0.0.0.0", "::")


def parse_sdp(body: bytes) -> MediaDescription:
    """The first audio stream of an SDP body."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SdpError("SDP is not UTF-8") from None
    session_address: str | None = None
    session_address_type = "IP4"
    media: MediaDescription | None = None
    session_direction = "sendrecv"
    in_audio = False
    for raw in text.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        if kind == "m":
            if media is not None:
                break  # only the first audio stream is used
            parts = value.split()
            in_audio = len(parts) >= 4 and parts[0] == "audio"
            if not in_audio:
                continue
            if not parts[1].isdigit() or not parts[2].upper().startswith("RTP/"):
                raise SdpError("unsupported audio media line")
            types = [int(p) for p in parts[3:] if p.isdigit() and int(p) < 128]
            media = MediaDescription(session_address or "", int(parts[1]), types)
            media.direction = session_direction
            media.address_type = session_address_type
            media.profile = parts[2]
        elif kind == "c":
            address, address_type = _connection(value)
            if media is not None and in_audio:
                media.address, media.address_type = address, address_type
            elif media is None:
                session_address, session_address_type = address, address_type
        elif kind == "a":
            name, _, attribute = value.partition(":")
            if name in DIRECTIONS:
                if media is not None and in_audio:
                    media.direction = name
                elif media is None:
                    session_direction = name
            elif media is not None and in_audio:
                _attribute(media, name, attribute)
    if media is None:
        raise SdpError("no audio stream offered")
    if not media.address:
        raise SdpError("no connection address")
    if not 0 <= media.port < 65536:
        raise SdpError("bad media port")
    return media


def _connection(value: str) -> tuple[str, str]:
    """The address and address type of a ``c=`` line; SdpError when it is unusable."""
    pieces = value.split()
    if len(pieces) < 3:
        raise SdpError("bad connection line")
    network, address_type, address = pieces[0].upper(), pieces[1].upper(), pieces[2]
    address = address.split("/")[0]  # a multicast TTL or count would follow
    if network != "IN" or address_type not in ADDRESS_TYPES:
        raise SdpError(f"unsupported connection {network} {address_type}"[:60])
    try:
        literal = ipaddress.ip_address(address)
    except ValueError:
        if not is_host_name(address):
            raise SdpError(f"bad connection address {address[:40]!r}") from None
        return address, address_type
    if literal.version != (4 if address_type == "IP4" else 6):
        raise SdpError(f"connection address {address[:40]!r} is not {address_type}")
    return address, address_type


def is_host_name(text: str) -> bool:
    """A DNS name (not an IP literal, nor a dotted number like ``999.1.1.1``)."""
    if len(text) > 253 or not _HOST_NAME.match(text):
        return False
    return not text.rstrip(".").rpartition(".")[2].isdigit()  # a numeric top label is no name


def _attribute(media: MediaDescription, name: str, value: str) -> None:
    if name == "rtpmap":
        pt, _, mapping = value.partition(" ")
        if pt.isdigit():
            media.rtpmap[int(pt)] = mapping.strip()
    elif name == "fmtp":
        pt, _, params = value.partition(" ")
        if pt.isdigit():
            media.fmtp[int(pt)] = params.strip()
    elif name == "ptime" and value.strip().isdigit():
        media.ptime = int(value.strip())
    elif name == "crypto" and len(media.crypto) < 16:
        media.crypto.append(value.strip())
    elif name == "ssrc" and len(media.ssrc) < 16:
        ssrc = value.split(" ", 1)[0]
        if ssrc.isdigit() and int(ssrc) < 2**32 and int(ssrc) not in media.ssrc:
            media.ssrc.append(int(ssrc))


@dataclass(frozen=True, slots=True)
class Negotiated:
    payload_type: int
    codec: str  # "PCMU" | "PCMA" | "G722"
    event_payload_type: int | None
    remote_address: str
    remote_port: int
    direction: str
    ssrc: int | None = None  # the one SSRC the offer declared (None: none, or several)


def negotiate(offer: MediaDescription, supported: tuple[str, ...] = ("PCMU", "PCMA")) -> Negotiated:
    """Choose the first offered codec trunkline supports; SdpError when none is."""
    codec_pt: int | None = None
    for pt in offer.payload_types:
        encoding = offer.encoding(pt)
        if encoding in supported and offer.clock_rate(pt) == 8000:
            codec_pt = pt
            break
    if codec_pt is None:
        raise SdpError(f"no common codec ({' or '.join(supported)} required)")
    event_pt = next(
        (
            pt
            for pt in offer.payload_types
            if offer.encoding(pt) == "TELEPHONE-EVENT" and offer.clock_rate(pt) == 8000
        ),
        None,
    )
    answer_direction = {"sendonly": "recvonly", "recvonly": "sendonly"}.get(
        offer.direction, offer.direction
    )
    return Negotiated(
        codec_pt,
        offer.encoding(codec_pt),
        event_pt,
        offer.address,
        offer.port,
        answer_direction,
        offer.ssrc[0] if len(offer.ssrc) == 1 else None,
    )


def build_sdp(
    address: str,
    port: int,
    payload_types: list[int],
    *,
    event_payload_type: int | None,
    direction: str = "sendrecv",
    session_id: int | None = None,
    version: int = 1,
    profile: str = "RTP/AVP",
    crypto: Sequence[str] = (),
) -> bytes:
    """An SDP body for one audio stream (used for both offers and answers)."""
    family = "IP6" if ":" in address else "IP4"
    session = session_id if session_id is not None else int(time.time())
    formats = list(payload_types) + ([event_payload_type] if event_payload_type else [])
    lines = [
        "v=0",
        f"o=trunkline {session} {version} IN {family} {address}",
        "s=trunkline",
        f"c=IN {family} {address}",
        "t=0 0",
        f"m=audio {port} {profile} {' '.join(str(pt) for pt in formats)}",
    ]
    for pt in payload_types:
        lines.append(f"a=rtpmap:{pt} {CODECS[pt]}/8000")
    if event_payload_type:
        lines.append(f"a=rtpmap:{event_payload_type} telephone-event/8000")
        lines.append(f"a=fmtp:{event_payload_type} 0-16")
    lines += [f"a=crypto:{value}" for value in crypto]
    lines += ["a=ptime:20", f"a={direction}"]
    return ("\r\n".join(lines) + "\r\n").encode()


def answer_sdp(
    negotiated: Negotiated,
    address: str,
    port: int,
    *,
    session_id: int | None = None,
    profile: str = "RTP/AVP",
    crypto: Sequence[str] = (),
) -> bytes:
    return build_sdp(
        address,
        port,
        [negotiated.payload_type],
        event_payload_type=negotiated.event_payload_type,
        direction=negotiated.direction,
        session_id=session_id,
        profile=profile,
        crypto=crypto,
    )
