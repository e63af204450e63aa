"""The data directory is the service user's only: directories 0700, files 0600.

``trunkline serve`` is started with the permissive umask 0o022 on a data
directory an earlier version left open (0755, a 0644 database); after a
recorded call, every directory under it must be 0700 and every file 0600. The
parts that create files themselves keep those modes even when the process
umask is permissive (an embedding application's, say).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.gateway.conftest import NUMBER, EchoAgent, free_port
from tests.gateway.sip_peer import CarrierCall
from tests.gateway.test_recording import tone_frames
from tests.gateway.test_recording_crash import seed_number
from tests.test_daemon import wait_http
from trunkline.crypto import UrlSigner
from trunkline.data_dir import load_node_id, secure_data_dir
from trunkline.storage.blobs import LocalBlobStore
from trunkline.storage.sqlite import SqliteRepository


def modes_under(root: Path) -> dict[str, int]:
    """Permission bits of ``root`` and of everything below it, by relative path."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for directory, subdirectories, files in os.walk(root):
        for name in subdirectories + files:
            path = Path(directory) / name
            found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def assert_private(root: Path) -> None:
    wrong = {}
    for name, mode in modes_under(root).items():
        expected = 0o700 if (root / name).is_dir() else 0o600
        if mode != expected:
            wrong[name] = oct(mode)
    assert not wrong, wrong


@contextmanager
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def start_serve(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """``trunkline serve`` started with the umask most systems give a service: 0o022."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "trunkline", "serve"],
            env=env, stdout=subprocess.DEVNULL, stderr=log, umask=0o022,
        )  # fmt: skip


async def test_serve_keeps_the_data_directory_private_under_a_permissive_umask(
    tmp_path: Path, echo_agent: EchoAgent
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    organization_id = await seed_number(data_dir, echo_agent.url)
    (data_dir / "recordings").mkdir()
    for path, mode in ((data_dir, 0o755), (data_dir / "recordings", 0o755)):
        os.chmod(path, mode)
    os.chmod(data_dir / "trunkline.db", 0o644)
    http_port, sip_port = free_port(socket.SOCK_STREAM), free_port()
    rtp_low = 29000 + (free_port() % 50) * 20  # below the ephemeral range
    env = dict(
        os.environ,
        TRUNKLINE_DATA_DIR=str(data_dir), TRUNKLINE_HOST="127.0.0.1",
        TRUNKLINE_HTTP_PORT=str(http_port), TRUNKLINE_SIP_HOST="127.0.0.1",
        TRUNKLINE_SIP_PORT=str(sip_port), TRUNKLINE_MEDIA_ADDRESS="127.0.0.1",
        TRUNKLINE_RTP_PORT_MIN=str(rtp_low), TRUNKLINE_RTP_PORT_MAX=str(rtp_low + 19),
        TRUNKLINE_ALLOW_INSECURE_URLS="1", TRUNKLINE_ALLOW_PRIVATE_TARGETS="1",
        TRUNKLINE_TRANSCRIPTION="off",
    )  # fmt: skip
    log_path = tmp_path / "serve.log"
    server = start_serve(env, log_path)
    carrier = await CarrierCall.open(sip_port)
    repository = await SqliteRepository.open(data_dir / "trunkline.db")
    try:
        await asyncio.to_thread(wait_http, f"http://127.0.0.1:{http_port}/healthz")
        assert (await carrier.invite(NUMBER)).status == 200
        await carrier.send_audio(tone_frames(1.2))  # a second is flushed to the partial file
        partial_modes = modes_under(data_dir / "recordings")
        await carrier.bye(NUMBER)
        for _ in range(200):
            (call,) = await repository.list_calls(organization_id)
            if call.recording_key:
                break
            await asyncio.sleep(0.05)
        assert call.recording_key, "the recording was not published"
    finally:
        carrier.close()
        await repository.close()
        server.send_signal(signal.SIGTERM)
        await asyncio.to_thread(server.wait, 20)
    assert server.returncode == 0
    assert set(partial_modes.values()) == {0o700, 0o600}, partial_modes  # dir and partial
    assert (data_dir / "blobs" / "recordings" / f"{call.id}.wav").is_file()
    assert {"secret.key", "node-id", "trunkline.db"} <= {p.name for p in data_dir.iterdir()}
    assert_private(data_dir)
    written = log_path.read_text()
    assert f"tightened {data_dir} from 755 to 700" in written
    assert f"tightened {data_dir / 'trunkline.db'} from 644 to 600" in written


async def test_files_are_private_whatever_the_process_umask(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with permissive_umask():
        secure_data_dir(data_dir)
        load_node_id(data_dir)
        repository = await SqliteRepository.open(data_dir / "trunkline.db")
        try:
            await repository.migrate()
            await repository.create_organization("acme")  # -wal and -shm exist now
            store = LocalBlobStore(data_dir / "blobs", UrlSigner(b"k" * 32), "http://x")
            await asyncio.to_thread(store.put_sync, "media/org/text/photo.jpg", b"\xff\xd8")
            names = {str(p.relative_to(data_dir)) for p in data_dir.rglob("*")}
            assert {"trunkline.db-wal", "trunkline.db-shm", "node-id"} <= names
            assert "blobs/media/org/text/photo.jpg" in names
            assert_private(data_dir)
        finally:
            await repository.close()
