"""The caller over RTP: a ``CallerLeg`` for the media session on a SIP call.

The ``RtpSession`` filters and packetises, the ``RtpEndpoint`` sends. Silence
is sent, not suppressed (carriers end calls whose RTP stops flowing), and an
RTCP sender report goes out about every five seconds.

Caller audio goes through the call's ``JitterBuffer`` (unless its maximum
depth is 0: pass-through). A frame that can be played as its packet arrives
(in order, with the buffer's target depth behind it) goes to the media
session at once; otherwise the session pulls it on its 20 ms tick, the
frame's deadline. A frame that is not there by then is concealed
(``codecs.concealment``): from the first
packet on, the agent gets a frame every 20 ms until the call ends, silence
while the caller sends nothing (on hold, say), as Twilio's media streams do.
(A G.722 call is never buffered: a concealment frame is not valid ADPCM.)

The media session plays μ-law at 8 kHz; the leg sends it in the call's codec:
as is (PCMU), by one table lookup (PCMA), or upsampled to 16 kHz and encoded
(G.722, one encoder per call: 160 bytes and 160 RTP clock ticks per 20 ms).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict

from trunkline.codecs.concealment import Concealer
from trunkline.codecs.g711 import ULAW_TO_ALAW, ulaw_to_pcm16
from trunkline.codecs.g722 import G722Encoder
from trunkline.codecs.quiet import quiet_test
from trunkline.codecs.resample import StreamingResampler
from trunkline.gateway.rtp.jitter import JitterBuffer
from trunkline.gateway.rtp.rtcp import REPORT_INTERVAL_FRAMES, build_report
from trunkline.gateway.rtp.session import RtpSession
from trunkline.gateway.rtp.transport import RtpEndpoint
from trunkline.media.clock import MAX_CATCH_UP
from trunkline.media.session import MediaSession

MULAW_SILENCE_FRAME = b"\xff" * 160
ALAW_SILENCE_FRAME = b"\xd5" * 160
PCM_SILENCE_FRAME = bytes(320)  # 20 ms of PCM16 at 8 kHz


class WidebandSender:
    """μ-law 8 kHz frames → G.722 payloads: decoded, upsampled to 16 kHz, encoded (per call)."""

    __slots__ = ("_encoder", "_upsampler")

    def __init__(self) -> None:
        self._upsampler = StreamingResampler(8000, 16000)
        self._encoder = G722Encoder()

    def encode(self, ulaw: bytes | None) -> bytes:
        pcm = PCM_SILENCE_FRAME if ulaw is None else ulaw_to_pcm16(ulaw)
        return self._encoder.encode(self._upsampler.process(pcm))


class RtpLeg:
    """The caller over RTP: the session filters and packetises, the endpoint sends."""

    __slots__ = (
        "_until_report",
        "_wideband",
        "alaw",
        "codec",
        "concealer",
        "endpoint",
        "jitter",
        "session",
    )

    def __init__(
        self,
        endpoint: RtpEndpoint,
        media: MediaSession,
        *,
        payload_type: int,
        codec: str | None = None,  # PCMU, PCMA or G722 (default: by the static payload type)
        event_payload_type: int | None,
        remote: tuple[str, int],
        signalling_host: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.codec = codec or {8: "PCMA", 9: "G722"}.get(payload_type, "PCMU")
        self.alaw = self.codec == "PCMA"
        self._wideband = WidebandSender() if self.codec == "G722" else None
        least, most = media.caller_jitter
        self.jitter = (
            JitterBuffer(
                min_frames=least,
                max_frames=most,
                catch_up_frames=MAX_CATCH_UP,
                quiet=quiet_test("pcma" if self.alaw else "pcmu"),
                on_arrival=True,
            )
            if most and self._wideband is None
            else None
        )
        self.concealer = Concealer("pcma" if self.alaw else "pcmu")
        self.session = RtpSession(
            payload_type,
            event_payload_type,
            media.caller_audio,
            media.caller_digit,
            remote=remote,
            signalling_host=signalling_host,
            jitter=self.jitter,
            on_buffered=media.caller_buffered if self.jitter is not None else None,
            arrival=endpoint.arrival,
        )
        endpoint.session = self.session
        if self.jitter is not None:
            media.pull_caller_audio(self.caller_frame, self.arrived_caller_frame)
        # The first report goes out at a random point of the first 5 s (calls stay out of step).
        self._until_report = 50 + secrets.randbelow(REPORT_INTERVAL_FRAMES)

    def arrived_caller_frame(self) -> memoryview | None:
        """After a packet arrived: the next caller frame if it can be played now."""
        jitter = self.jitter
        if jitter is None or self.endpoint.session is not self.session:
            return None  # detached
        frame = jitter.pull_on_arrival()
        if frame is not None:
            self.concealer.played(frame)
        return frame

    def caller_frame(self) -> bytes | memoryview | None:
        """This tick's caller frame: buffered audio, else a concealment frame once started
        (None: detached, not started, or the period's frame was played on arrival)."""
        jitter = self.jitter
        if jitter is None or self.endpoint.session is not self.session or not jitter.due():
            return None
        frame = jitter.pull()
        if frame is not None:
            self.concealer.played(frame)
            return frame
        return self.concealer.conceal() if jitter.started else None

    def send_frame(self, frame: bytes | None) -> None:
        # Silence is sent, not suppressed: carriers end calls whose RTP stops flowing.
        if self._wideband is not None:
            frame = self._wideband.encode(frame)
        elif frame is None:
            frame = ALAW_SILENCE_FRAME if self.alaw else MULAW_SILENCE_FRAME
        elif self.alaw:
            frame = frame.translate(ULAW_TO_ALAW)
        packet = self.session.next_frame(frame)
        if packet is not None:
            self.endpoint.send(packet)
        self._until_report -= 1
        if self._until_report <= 0:
            self._until_report = REPORT_INTERVAL_FRAMES
            self._send_report()

    def _send_report(self) -> None:
        rtcp = self.endpoint.rtcp
        if rtcp is None:
            return
        session = self.session
        counters = session.counters
        self.endpoint.send_rtcp(
            build_report(
                ssrc=session.ssrc,
                rtp_timestamp=session.out_timestamp,
                packets_sent=counters.packets_out,
                octets_sent=counters.bytes_out - 12 * counters.packets_out,
                stats=session.reception_stats(),
                state=rtcp.state,
                now_unix=time.time(),
                now_mono=time.monotonic(),
            )
        )

    def detach(self) -> None:
        self.endpoint.session = None

    def rephased(self, earlier_seconds: float) -> None:
        # Keep RTP time with wall time: the next packet is stamped that much earlier.
        self.session.rewind(round(earlier_seconds * 8000))

    def rtp_counters(self) -> dict[str, int]:
        counters = asdict(self.session.counters)
        if self.jitter is not None:
            counters.update(self.jitter.counter_values())
            concealer = self.concealer
            counters["concealed_repeat"] = concealer.repeated
            counters["concealed_silence"] = concealer.silenced
            counters["concealed_idle"] = concealer.idle
        return counters
