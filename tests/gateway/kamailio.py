"""A real kamailio registrar for the tests (tests/sip/kamailio/registrar.cfg), in the foreground."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.gateway.sip_peer import bind_udp
from trunkline.gateway.sip.message import SipRequest, SipResponse, parse_message

KAMAILIO = "/usr/sbin/kamailio"
CONFIG = Path(__file__).parent.parent / "sip" / "kamailio" / "registrar.cfg"
MODULE_DIRS = (
    Path("/usr/lib/x86_64-linux-gnu/kamailio/modules"),
    Path("/usr/lib/aarch64-linux-gnu/kamailio/modules"),
    Path("/usr/lib/kamailio/modules"),
)
USER = "alice"
PASSWORD = "s3cret"


def module_dir() -> Path | None:
    return next((d for d in MODULE_DIRS if (d / "registrar.so").is_file()), None)


def kamailio_available() -> bool:
    return (shutil.which("kamailio") is not None or Path(KAMAILIO).is_file()) and (
        module_dir() is not None
    )


@dataclass
class Registrar:
    host: str
    port: int
    log: Path

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


async def _answers_options(host: str, port: int) -> bool:
    transport, inbox, own = await bind_udp("127.0.0.1", sip=True)
    try:
        request = SipRequest(method="OPTIONS", uri=f"sip:{host}:{port}")
        request.headers.add(
            "Via", f"SIP/2.0/UDP 127.0.0.1:{own};branch=z9hG4bK{secrets.token_hex(6)}"
        )
        request.headers.add("From", f"<sip:probe@127.0.0.1>;tag={secrets.token_hex(4)}")
        request.headers.add("To", f"<sip:{host}:{port}>")
        request.headers.add("Call-ID", secrets.token_hex(8))
        request.headers.add("CSeq", "1 OPTIONS")
        request.headers.add("Max-Forwards", "70")
        transport.sendto(request.serialize(), (host, port))
        data = await asyncio.wait_for(inbox.queue.get(), 0.5)
        message = parse_message(data)
        return isinstance(message, SipResponse) and message.status == 200
    except TimeoutError:
        return False
    finally:
        transport.close()


@asynccontextmanager
async def running_registrar(
    workdir: Path, port: int, host: str = "127.0.0.1"
) -> AsyncIterator[Registrar]:
    """kamailio on ``host:port`` (UDP) until the block ends; its process group is killed."""
    modules = module_dir()
    assert modules is not None
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    log = workdir / "kamailio.log"
    output = await asyncio.to_thread(log.open, "wb")
    with output:
        process = await asyncio.create_subprocess_exec(
            KAMAILIO,
            "-DD", "-E",
            "-f", str(CONFIG),
            "-L", str(modules),
            "-l", f"udp:{host}:{port}",
            "-Y", str(workdir),
            "-w", str(workdir),
            "-m", "32", "-M", "8",
            stdout=output,
            stderr=output,
            start_new_session=True,
        )  # fmt: skip
    try:
        for _ in range(100):
            if process.returncode is not None:
                raise AssertionError(f"kamailio exited: {log.read_text()[-2000:]}")
            if await _answers_options(host, port):
                break
        else:
            raise AssertionError(f"kamailio did not answer: {log.read_text()[-2000:]}")
        yield Registrar(host, port, log)
    finally:
        if process.returncode is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                await asyncio.wait_for(process.wait(), 10)
            except (ProcessLookupError, TimeoutError):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
