"""A throwaway PostgreSQL cluster for the test session: ``initdb`` into a temporary
directory, ``pg_ctl start`` on a free loopback port, stopped and deleted at the end.

Nothing is needed beyond the server binaries (Debian's ``postgresql`` package): no
pre-made database, role or authentication set-up. ``TRUNKLINE_TEST_POSTGRES_URL``
points the tests at an existing server instead.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

_DEBIAN_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def server_binaries() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``, if any."""
    on_path = shutil.which("initdb")
    candidates = [str(Path(on_path).resolve().parent)] if on_path else []
    versioned = sorted(glob.glob(_DEBIAN_BIN_GLOB), key=lambda d: _major(Path(d).parent.name))
    candidates += reversed(versioned)
    for directory in candidates:
        path = Path(directory)
        if all((path / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            return path
    return None


def _major(name: str) -> int:
    return int(name) if name.isdigit() else 0


def _run_as() -> pwd.struct_passwd | None:
    """PostgreSQL refuses to run as root: as root, the cluster belongs to ``postgres``."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError as error:
        raise RuntimeError(
            "running as root needs a 'postgres' system user for the server"
        ) from error


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ThrowawayCluster:
    root: Path
    bin_dir: Path
    port: int
    owner: pwd.struct_passwd | None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        kwargs = {}
        if self.owner is not None:
            kwargs = {"user": self.owner.pw_uid, "group": self.owner.pw_gid}
        result = subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
            check=False,
            **kwargs,  # type: ignore[arg-type]
        )
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): {result.stderr[-2000:]}")

    @classmethod
    def start(cls, bin_dir: Path) -> ThrowawayCluster:
        owner = _run_as()
        root = Path(tempfile.mkdtemp(prefix="trunkline-pg-"))
        if owner is not None:
            os.chown(root, owner.pw_uid, owner.pw_gid)
        cluster = cls(root, bin_dir, _free_tcp_port(), owner)
        data = root / "data"
        cluster._run(
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = (
            f"-p {cluster.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        cluster._run(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        return cluster

    def stop(self) -> None:
        if not self.root.exists():
            return
        try:
            self._run(
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.root / "data"),
                "-m",
                "immediate",
                "-w",
                "stop",
            )
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


_lock = threading.Lock()
_cluster: ThrowawayCluster | None = None
_unavailable: str | None = None


def postgres_url() -> str | None:
    """The URL of the session's PostgreSQL (started on first use), or None if there is none.

    ``unavailable_reason()`` says why there is none.
    """
    global _cluster, _unavailable
    configured = os.environ.get("TRUNKLINE_TEST_POSTGRES_URL")
    if configured:
        return configured
    with _lock:
        if _cluster is not None:
            return _cluster.url
        if _unavailable is not None:
            return None
        bin_dir = server_binaries()
        if bin_dir is None:
            _unavailable = "PostgreSQL server binaries (initdb, pg_ctl, postgres)"
            return None
        _cluster = ThrowawayCluster.start(bin_dir)
        atexit.register(stop_cluster)
        return _cluster.url


def unavailable_reason() -> str:
    return _unavailable or "PostgreSQL"


def stop_cluster() -> None:
    global _cluster
    with _lock:
        if _cluster is not None:
            _cluster.stop()
            _cluster = None
