"""A pipecat bot for trunkline's Twilio persona: it echoes the caller, then hangs up.

It is an ordinary pipecat Twilio bot — FastAPI WebSocket transport and
``TwilioFrameSerializer`` — with no speech services, so it runs without any
keys. Each call's WebSocket gets its own pipeline: caller audio in, the same
audio out. Once it has heard ``--hang-up-after`` seconds of the caller it ends
the pipeline with an ``EndFrame``; pipecat then closes the socket (code 1000),
which trunkline takes as the agent hanging up. With ``TWILIO_AUTH_TOKEN`` set to
a trunkline service token the serializer also hangs up through trunkline's
Twilio REST API first (``auto_hang_up``, sent to ``--api-base-url``).

Run it with one command (see README.md)::

    python examples/pipecat_twilio_bot/bot.py --port 8765
"""

from __future__ import annotations

import argparse
import json
import os

import uvicorn
from fastapi import FastAPI, WebSocket
from loguru import logger
from pipecat.frames.frames import EndWorkerFrame, Frame, InputAudioRawFrame, OutputAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from pipecat.workers.runner import WorkerRunner

SAMPLE_RATE = 8000  # the phone's rate: no resampling, so the echo is the caller's own audio


class Echo(FrameProcessor):
    """Sends the caller's audio back; asks the pipeline to end after ``hang_up_after`` seconds."""

    def __init__(self, hang_up_after: float | None) -> None:
        super().__init__()
        self._hang_up_after = hang_up_after
        self._heard_seconds = 0.0
        self._ending = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, InputAudioRawFrame):
            await self.push_frame(frame, direction)
            return
        await self.push_frame(
            OutputAudioRawFrame(
                audio=frame.audio, sample_rate=frame.sample_rate, num_channels=frame.num_channels
            )
        )
        self._heard_seconds += len(frame.audio) / (2 * frame.sample_rate * frame.num_channels)
        limit = self._hang_up_after
        if limit is not None and self._heard_seconds >= limit and not self._ending:
            self._ending = True
            logger.info(f"heard {self._heard_seconds:.1f} s of the caller: hanging up")
            await self.push_frame(EndWorkerFrame(), FrameDirection.UPSTREAM)  # → EndFrame


async def read_start(websocket: WebSocket) -> dict[str, str]:
    """The Twilio handshake: ``connected``, then ``start`` with the stream's identifiers."""
    while True:
        message = json.loads(await websocket.receive_text())
        if message.get("event") == "start":
            start: dict[str, str] = message["start"]
            return start


def make_app(hang_up_after: float | None, api_base_url: str | None) -> FastAPI:
    app = FastAPI()

    @app.websocket("/ws")
    async def media_stream(websocket: WebSocket) -> None:
        await websocket.accept()
        start = await read_start(websocket)
        token = os.environ.get("TWILIO_AUTH_TOKEN")  # a trunkline service token
        logger.info(f"stream {start['streamSid']} for call {start['callSid']}")
        serializer = TwilioFrameSerializer(
            stream_sid=start["streamSid"],
            call_sid=start["callSid"],
            account_sid=os.environ.get("TWILIO_ACCOUNT_SID") or start["accountSid"],
            auth_token=token,
            base_url=api_base_url,
            params=TwilioFrameSerializer.InputParams(auto_hang_up=bool(token)),
        )
        transport = FastAPIWebsocketTransport(
            websocket=websocket,
            params=FastAPIWebsocketParams(
                audio_in_enabled=True, audio_out_enabled=True, serializer=serializer
            ),
        )
        pipeline = Pipeline([transport.input(), Echo(hang_up_after), transport.output()])
        worker = PipelineWorker(
            pipeline,
            params=PipelineParams(
                audio_in_sample_rate=SAMPLE_RATE, audio_out_sample_rate=SAMPLE_RATE
            ),
            enable_rtvi=False,
            idle_timeout_secs=None,
        )

        @transport.event_handler("on_client_disconnected")
        async def on_client_disconnected(transport: object, client: object) -> None:
            await worker.cancel()  # the caller hung up

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        await runner.run()

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--hang-up-after",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="end the call after hearing this much of the caller (0: never)",
    )
    parser.add_argument(
        "--api-base-url",
        default="http://127.0.0.1:8080",
        help="trunkline's HTTP address, where auto_hang_up sends Twilio's REST hang-up",
    )
    args = parser.parse_args()
    app = make_app(args.hang_up_after or None, args.api_base_url)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
