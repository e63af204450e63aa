"""A slow agent (it stops reading) loses its own media frames and delays no one else."""

from __future__ import annotations

import asyncio
import os
import socket

from websockets.asyncio.server import ServerConnection, serve

from tests.gateway.conftest import NUMBER, PASS_THROUGH, EchoAgent, Trunkline, audio_mode
from tests.gateway.sip_peer import CarrierCall
from trunkline.gateway.rtp.packet import build_packet

OTHER_NUMBER = "+15550100002"


@PASS_THROUGH
async def test_a_stalled_agent_does_not_hold_up_another_call(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    stalled = asyncio.Event()
    released = asyncio.Event()

    async def never_reads(connection: ServerConnection) -> None:
        stalled.set()
        await released.wait()  # holds the socket open and reads nothing until the end

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited by the accept
    listener.bind(("127.0.0.1", 0))
    async with serve(
        never_reads,
        sock=listener,
        max_queue=1,
        close_timeout=0.5,
        process_response=audio_mode,
    ) as server:
        slow_url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/slow"
        await trunkline.number("auto_accept", slow_url)
        await trunkline.number("auto_accept", echo_agent.url, e164=OTHER_NUMBER)
        slow = await CarrierCall.open(trunkline.sip_port)
        healthy = await CarrierCall.open(trunkline.sip_port)
        try:
            assert (await slow.invite(NUMBER)).status == 200
            await asyncio.wait_for(stalled.wait(), 5)
            assert slow.remote_media is not None
            # Far more caller audio than the stalled socket can take, as fast as it goes.
            for sequence in range(30_000):
                slow.send_raw_rtp(
                    build_packet(os.urandom(160), payload_type=0, sequence=sequence,
                                 timestamp=sequence * 160, ssrc=1)
                )  # fmt: skip
                if sequence % 100 == 0:
                    await asyncio.sleep(0.001)  # let trunkline drain its UDP socket
            assert (await healthy.invite(OTHER_NUMBER)).status == 200
            frames = [os.urandom(160).replace(b"\xff", b"\xfe") for _ in range(25)]
            await healthy.send_audio(frames)
            assert await healthy.received_audio(25 * 160) == b"".join(frames)
            live = {
                c.lifecycle.record.local_phone_number: c for c in trunkline.gateway.calls.values()
            }
            slow_link = live[NUMBER].bridge.link  # type: ignore[union-attr]
            assert slow_link is not None and slow_link.dropped_frames > 0
            healthy_link = live[OTHER_NUMBER].bridge.link  # type: ignore[union-attr]
            assert healthy_link is not None and healthy_link.dropped_frames == 0
            assert (await healthy.bye(OTHER_NUMBER)).status == 200
            assert (await slow.bye(NUMBER)).status == 200
        finally:
            released.set()
            slow.close()
            healthy.close()
