"""A minimal carrier for tests: a SIP UAC and an RTP peer that sends known audio."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import cast

from trunkline.gateway.rtp.packet import build_packet, parse_packet
from trunkline.gateway.sip.message import SipRequest, SipResponse, parse_message
from trunkline.gateway.sip.sdp import parse_sdp


class Inbox(asyncio.DatagramProtocol):
    """What one socket receives. A SIP socket keeps SIP only, as a SIP stack would: its port
    may be another peer's RTP port + 1, where RTCP reports go when no ``a=rtcp`` names one."""

    def __init__(self, *, sip: bool = False) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=10_000)
        self.transport: asyncio.DatagramTransport | None = None
        self.last_source: tuple[str, int] = ("127.0.0.1", 0)
        self.sip = sip
        self.not_sip = 0  # datagrams a SIP socket dropped (RTP/RTCP, keep-alives)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.sip and not data[:1].isalpha():  # SIP starts with a method or "SIP/2.0"
            self.not_sip += 1
            return
        self.last_source = (addr[0], addr[1])
        if not self.queue.full():
            self.queue.put_nowait(data)


async def bind_udp(
    host: str = "127.0.0.1", *, sip: bool = False
) -> tuple[asyncio.DatagramTransport, Inbox, int]:
    loop = asyncio.get_running_loop()
    inbox = Inbox(sip=sip)
    transport, _ = await loop.create_datagram_endpoint(lambda: inbox, local_addr=(host, 0))
    inbox.transport = transport
    return transport, inbox, int(transport.get_extra_info("sockname")[1])


@dataclass
class CarrierCall:
    """A carrier placing calls to trunkline from ``host`` (its SIP and RTP sockets, Via,
    From, Contact and SDP all name it; the whole 127.0.0.0/8 is loopback on Linux)."""

    sip: asyncio.DatagramTransport
    sip_inbox: Inbox
    sip_port: int
    rtp: asyncio.DatagramTransport
    rtp_inbox: Inbox
    rtp_port: int
    target: tuple[str, int]
    call_id: str = field(default_factory=lambda: secrets.token_hex(8) + "@test")
    from_tag: str = field(default_factory=lambda: secrets.token_hex(4))
    to_header: str = ""
    remote_media: tuple[str, int] | None = None
    host: str = "127.0.0.1"

    @classmethod
    async def open(cls, sip_port: int, host: str = "127.0.0.1") -> CarrierCall:
        sip, sip_inbox, own_sip = await bind_udp(host, sip=True)
        rtp, rtp_inbox, own_rtp = await bind_udp(host)
        target = ("127.0.0.1", sip_port)
        return cls(sip, sip_inbox, own_sip, rtp, rtp_inbox, own_rtp, target, host=host)

    def request(
        self, method: str, number: str, cseq: int, body: bytes = b"", branch: str | None = None
    ) -> SipRequest:
        request = SipRequest(method=method, uri=f"sip:{number}@127.0.0.1:{self.target[1]}")
        branch = branch or "z9hG4bK" + secrets.token_hex(6)
        request.headers.add("Via", f"SIP/2.0/UDP {self.host}:{self.sip_port};branch={branch}")
        request.headers.add("From", f"<sip:+14155550123@{self.host}>;tag={self.from_tag}")
        request.headers.add("To", self.to_header or f"<sip:{number}@127.0.0.1>")
        request.headers.add("Call-ID", self.call_id)
        request.headers.add("CSeq", f"{cseq} {method}")
        request.headers.add("Contact", f"<sip:carrier@{self.host}:{self.sip_port}>")
        request.headers.add("Max-Forwards", "70")
        if body:
            request.headers.add("Content-Type", "application/sdp")
        request.body = body
        return request

    async def response(self, wait_seconds: float = 10.0) -> SipResponse:
        while True:
            message = parse_message(
                await asyncio.wait_for(self.sip_inbox.queue.get(), wait_seconds)
            )
            if isinstance(message, SipResponse):
                return message

    async def invite(
        self,
        number: str,
        payload_types: str = "0 101",
        *,
        cseq: int = 1,
        headers: dict[str, str] | None = None,
        media_host: str | None = None,  # what c= names (default: the carrier's address)
    ) -> SipResponse:
        connection = media_host or self.host
        sdp = (
            f"v=0\r\no=carrier 1 1 IN IP4 {self.host}\r\ns=-\r\nc=IN IP4 {connection}\r\n"
            "t=0 0\r\n"
            f"m=audio {self.rtp_port} RTP/AVP {payload_types}\r\n"
            "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
        ).encode()
        invite = self.request("INVITE", number, cseq, sdp)
        for name, value in (headers or {}).items():
            invite.headers.add(name, value)
        self.sip.sendto(invite.serialize(), self.target)
        while True:
            response = await self.response()
            if response.status >= 200:
                break
        self.to_header = response.headers.get("To") or ""
        if response.status == 200:
            answer = parse_sdp(response.body)
            self.remote_media = (answer.address, answer.port)
            self.sip.sendto(self.request("ACK", number, cseq).serialize(), self.target)
        else:  # a non-2xx is ACKed inside the INVITE transaction: same branch (RFC 3261 §17.1.1.3)
            ack = self.request("ACK", number, cseq, branch=invite.top_via.branch)
            self.sip.sendto(ack.serialize(), self.target)
            self.to_header = ""
        return response

    async def send_audio(self, frames: list[bytes], payload_type: int = 0) -> None:
        assert self.remote_media is not None
        ssrc, seq, ts = secrets.randbits(32), secrets.randbits(16), secrets.randbits(32)
        for index, frame in enumerate(frames):
            packet = build_packet(
                frame,
                payload_type=payload_type,
                sequence=(seq + index) & 0xFFFF,
                timestamp=(ts + 160 * index) & 0xFFFFFFFF,
                ssrc=ssrc,
                marker=index == 0,
            )
            self.rtp.sendto(packet, self.remote_media)
            await asyncio.sleep(0.02)

    def send_raw_rtp(self, data: bytes) -> None:
        assert self.remote_media is not None
        self.rtp.sendto(data, self.remote_media)

    async def received_audio(self, wanted_bytes: int, wait_seconds: float = 10.0) -> bytes:
        audio = bytearray()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        while len(audio) < wanted_bytes and loop.time() < deadline:
            try:
                data = await asyncio.wait_for(self.rtp_inbox.queue.get(), deadline - loop.time())
            except TimeoutError:
                break
            payload = bytes(parse_packet(data).payload)
            if payload.strip(b"\xff") and payload.strip(b"\xd5"):  # not a silence frame
                audio += payload
        return bytes(audio)

    async def bye(self, number: str) -> SipResponse:
        self.sip.sendto(self.request("BYE", number, 2).serialize(), self.target)
        return await self.response()

    async def expect_request(self, method: str, wait_seconds: float = 10.0) -> SipRequest:
        while True:
            message = parse_message(
                await asyncio.wait_for(self.sip_inbox.queue.get(), wait_seconds)
            )
            if isinstance(message, SipRequest) and message.method == method:
                reply = SipResponse(status=200, reason="OK")
                for name in ("Via", "From", "To", "Call-ID", "CSeq"):
                    for value in message.headers.get_all(name):
                        reply.headers.add(name, value)
                self.sip.sendto(reply.serialize(), self.target)
                return message

    def close(self) -> None:
        self.sip.close()
        self.rtp.close()
