"""SDP (RFC 4566) for one audio stream, and offer/answer (RFC 3264) for G.711/G.722 + DTMF.

trunkline offers and accepts PCMU (payload type 0) and PCMA (8) at 8 kHz and
G.722 (9; ``G722/8000`` in SDP, though it carries 16 kHz audio — RFC 3551's
historical clock rate) with RFC 4733 ``telephone-event``, ptime 20; which of
them, and in which order, is ``TRUNKLINE_SIP_CODECS``. The answer picks the
first codec of the offer that is enabled and echoes the offer's
telephone-event payload type. Hold is ``a=sendonly``/``a=inactive`` or a
0.0.0.0 connection.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

CODECS = {0: "PCMU", 8: "PCMA", 9: "G722"}
CODEC_PAYLOAD_TYPES = {name: pt for pt, name in CODECS.items()}
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
DEFAULT_EVENT_PAYLOAD_TYPE = 101


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
        elif kind == "c":
            pieces = value.split()
            if len(pieces) < 3:
                raise SdpError("bad connection line")
            address = pieces[2].split("/")[0]
            if media is not None and in_audio:
                media.address = address
            elif media is None:
                session_address = address
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


@dataclass(frozen=True, slots=True)
class Negotiated:
    payload_type: int
    codec: str  # "PCMU" | "PCMA" | "G722"
    event_payload_type: int | None
    remote_address: str
    remote_port: int
    direction: str


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
        f"m=audio {port} RTP/AVP {' '.join(str(pt) for pt in formats)}",
    ]
    for pt in payload_types:
        lines.append(f"a=rtpmap:{pt} {CODECS[pt]}/8000")
    if event_payload_type:
        lines.append(f"a=rtpmap:{event_payload_type} telephone-event/8000")
        lines.append(f"a=fmtp:{event_payload_type} 0-16")
    lines += ["a=ptime:20", f"a={direction}"]
    return ("\r\n".join(lines) + "\r\n").encode()


def answer_sdp(
    negotiated: Negotiated, address: str, port: int, *, session_id: int | None = None
) -> bytes:
    return build_sdp(
        address,
        port,
        [negotiated.payload_type],
        event_payload_type=negotiated.event_payload_type,
        direction=negotiated.direction,
        session_id=session_id,
    )
