"""baresip as a real SIP peer: a config directory, the process, and its ctrl_tcp control socket.

baresip (Debian package) runs headless: its microphone is a WAV file
(``aufile``), its loudspeaker an audio bridge nobody listens to, and the
``sndfile`` filter writes what it decoded (after SRTP and G.711) to WAV files
in ``snd_path``. It is driven over the ``ctrl_tcp`` module: netstring-framed
JSON commands (``dial``, ``hangup``) in, responses and call events out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MODULES = Path("/usr/lib/baresip/modules")
NEEDED_MODULES = ("g711", "aufile", "aubridge", "sndfile", "srtp", "account", "menu", "ctrl_tcp")


def baresip_available() -> bool:
    return shutil.which("baresip") is not None and all(
        (MODULES / f"{name}.so").is_file() for name in NEEDED_MODULES
    )


def write_tone(path: Path, seconds: float = 6.0, hertz: float = 440.0) -> None:
    """An 8 kHz mono S16LE sine: what baresip says into the call."""
    t = np.arange(int(8000 * seconds)) / 8000
    samples = (np.sin(2 * np.pi * hertz * t) * 8000).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(samples.tobytes())


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as source:
        frames = source.readframes(source.getnframes())
    return np.frombuffer(frames, dtype="<i2")


@dataclass
class BaresipConfig:
    directory: Path
    sip_port: int
    ctrl_port: int
    rtp_low: int
    account: str  # the accounts-file line: <sip:...>;params
    certificate: Path | None = None  # certificate and key in one PEM
    ca_file: Path | None = None
    tone: Path | None = None

    def write(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "dumps").mkdir(exist_ok=True)
        tone = self.tone or self.directory / "tone.wav"
        if self.tone is None:
            write_tone(tone)
        lines = [
            f"sip_listen 127.0.0.1:{self.sip_port}",
            f"audio_source aufile,{tone}",
            "audio_player aubridge,speaker",
            "audio_alert aubridge,alert",
            f"rtp_ports {self.rtp_low}-{self.rtp_low + 19}",
            f"module_path {MODULES}",
            *(f"module {name}.so" for name in ("g711", "aufile", "aubridge", "sndfile", "srtp")),
            "module_app account.so",
            "module_app menu.so",
            "module_app ctrl_tcp.so",
            f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}",
            f"snd_path {self.directory / 'dumps'}",
        ]
        if self.certificate is not None:
            lines.append(f"sip_certificate {self.certificate}")
        if self.ca_file is not None:
            lines.append(f"sip_cafile {self.ca_file}")
        (self.directory / "config").write_text("\n".join(lines) + "\n")
        (self.directory / "accounts").write_text(self.account + "\n")
        (self.directory / "contacts").write_text("")

    def decoded_audio(self) -> np.ndarray:
        """What baresip decoded from the far end (the sndfile filter's -dec dumps)."""
        dumps = sorted((self.directory / "dumps").glob("*dec*.wav"))
        return np.concatenate([read_wav(p) for p in dumps]) if dumps else np.zeros(0, "<i2")


@dataclass
class Baresip:
    process: asyncio.subprocess.Process
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    log: Path
    events: list[dict[str, Any]] = field(default_factory=list)
    _responses: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    _event_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _pump: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        while True:
            length = await self.reader.readuntil(b":")
            data = await self.reader.readexactly(int(length[:-1]))
            await self.reader.readexactly(1)  # the netstring's ","
            message = json.loads(data)
            if message.get("event"):
                self.events.append(message)
                self._event_arrived.set()
            else:
                await self._responses.put(message)

    async def command(self, name: str, params: str = "") -> dict[str, Any]:
        body = json.dumps({"command": name, "params": params, "token": name}).encode()
        self.writer.write(str(len(body)).encode() + b":" + body + b",")
        await self.writer.drain()
        return await asyncio.wait_for(self._responses.get(), 10)

    async def event(self, kind: str, within: float = 15.0) -> dict[str, Any]:
        """The first event of type ``kind`` (already seen, or the next to come)."""
        async with asyncio.timeout(within):
            while True:
                for event in self.events:
                    if event.get("type") == kind:
                        return event
                self._event_arrived.clear()
                await self._event_arrived.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.asynccontextmanager
async def running_baresip(config: BaresipConfig) -> AsyncIterator[Baresip]:
    """Start baresip with ``config``; stop its process group on the way out."""
    config.write()
    log = config.directory / "baresip.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            "baresip", "-f", str(config.directory), "-v",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=output,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    peer: Baresip | None = None
    try:
        for _ in range(100):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", config.ctrl_port)
                break
            except OSError:
                if process.returncode is not None:
                    raise AssertionError(f"baresip exited: {log.read_text()[-2000:]}") from None
                await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"baresip control port never opened: {log.read_text()[-2000:]}")
        peer = Baresip(process, reader, writer, log)
        peer._pump = asyncio.create_task(peer._read())
        yield peer
    finally:
        if peer is not None:
            if peer._pump is not None:
                peer._pump.cancel()
                with contextlib.suppress(BaseException):
                    await peer._pump
            peer.writer.close()
            with contextlib.suppress(OSError):
                await peer.writer.wait_closed()
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
