"""``trunkline call NUMBER``: options from the command line and the settings, the summary printed."""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys
from pathlib import Path

from trunkline.config import Settings
from trunkline.testcall.audio import AudioFileError
from trunkline.testcall.caller import CallOptions, place_call
from trunkline.testcall.summary import CallSummary

DIALLABLE = re.compile(r"^\+?[0-9*#]{1,32}$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("number", metavar="NUMBER", help="the number to dial, e.g. +15550100000")
    parser.add_argument(
        "--play", type=Path, metavar="FILE.wav", help="WAV file to play once answered"
    )
    parser.add_argument(
        "--record", type=Path, metavar="OUT.wav", help="write what comes back to this WAV file"
    )
    parser.add_argument("--dtmf", default="", help="keys to press after the audio, e.g. 12#")
    parser.add_argument(
        "--seconds",
        type=float,
        help="hang up this long after the answer [the audio and keys, plus 2 s; at least 5]",
    )
    parser.add_argument(
        "--sip-host",
        "--host",
        dest="sip_host",
        help="SIP server to call [TRUNKLINE_SIP_HOST, or 127.0.0.1 when it is 0.0.0.0]",
    )
    parser.add_argument(
        "--sip-port",
        "--port",
        dest="sip_port",
        type=int,
        help="its SIP UDP port [TRUNKLINE_SIP_PORT]",
    )
    parser.add_argument(
        "--from", dest="from_number", default="+15550109999", help="calling number [+15550109999]"
    )
    parser.add_argument(
        "--bind", default="127.0.0.1", help="local address for SIP and RTP [127.0.0.1]"
    )
    parser.add_argument(
        "--answer-timeout", type=float, default=30.0, help="cancel when not answered within [30 s]"
    )


def options_from(args: argparse.Namespace, settings: Settings) -> CallOptions:
    """The call to place: flags first, then where the settings say trunkline's SIP listens."""
    if not DIALLABLE.match(args.number):
        raise ValueError(f"cannot dial {args.number!r}: use digits with an optional leading +")
    host = args.sip_host or settings.sip.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1" if ":" not in args.bind else "::1"
    return CallOptions(
        number=args.number,
        host=host,
        port=args.sip_port or settings.sip.port,
        from_number=args.from_number,
        bind=args.bind,
        play=args.play,
        record=args.record,
        dtmf=args.dtmf,
        seconds=args.seconds,
        answer_timeout=args.answer_timeout,
    )


async def _call_until_interrupted(options: CallOptions) -> CallSummary:
    """The call; Ctrl-C (or SIGTERM) hangs it up with a BYE and still prints the summary."""
    hang_up = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, hang_up.set)
    return await place_call(options, hang_up)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Place the call and print its summary; 0 when answered, 1 when not, 2 for bad options."""
    try:
        options = options_from(args, settings)
        summary = asyncio.run(_call_until_interrupted(options))
    except (ValueError, AudioFileError, OSError) as exc:
        print(f"trunkline call: {exc}", file=sys.stderr)
        return 2
    for line in summary.lines():
        print(line)
    return 0 if summary.answered else 1
