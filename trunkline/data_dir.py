"""The data directory kept private: directories 0700, files 0600, and this node's id.

The data directory holds the database, the master key, recordings and text
media; nobody but the service user may read it. ``secure_data_dir`` creates
the directory and its parts 0700 and tightens what a previous version or an
operator left open to others, with a log line. Files trunkline creates are
opened with an explicit 0600 mode (or changed to it at once), whatever the
umask; the ``trunkline`` command also sets the process umask to 0o077
(``private_umask``) so that whatever a library creates is private too.

``load_node_id`` is this data directory's stable name on the calls it carries:
a random id generated once into ``node-id``. With the worker slot it makes a
call's ``owner``, which survives a restart, so the next start finds the calls a
crash left live.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from pathlib import Path

log = logging.getLogger("trunkline.data_dir")
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
PROCESS_UMASK = 0o077
NODE_ID_FILE = "node-id"
SUBDIRECTORIES = ("recordings", "blobs", "run")


def private_umask() -> None:
    """Files and directories this process creates from now on are its user's only."""
    os.umask(PROCESS_UMASK)


def secure_data_dir(data_dir: Path) -> None:
    """Create the data directory and its parts owner-only; tighten what is open to others."""
    if not data_dir.exists():
        log.warning("creating data directory %s", data_dir.absolute())
    private_directory(data_dir)
    for name in SUBDIRECTORIES:
        private_directory(data_dir / name)
    for entry in data_dir.iterdir():
        if entry.is_file() and not entry.is_symlink():
            _tighten(entry, PRIVATE_FILE_MODE)


def private_directory(path: Path) -> None:
    """Create ``path`` 0700 (missing parents too), or tighten it when it is open to others."""
    make_private_dirs(path)
    _tighten(path, PRIVATE_DIR_MODE)


def make_private_dirs(path: Path) -> None:
    """Create the missing directories of ``path``, each 0700 whatever the umask."""
    missing: list[Path] = []
    while not path.exists():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            directory.mkdir(mode=PRIVATE_DIR_MODE)
        os.chmod(directory, PRIVATE_DIR_MODE)


def private_file(path: Path, data: bytes) -> None:
    """Create ``path`` 0600 with ``data``; raises FileExistsError when it exists."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def load_node_id(data_dir: Path) -> str:
    """This data directory's node id, generated (0600) on first use."""
    path = data_dir / NODE_ID_FILE
    try:
        return _read_node_id(path)
    except FileNotFoundError:
        pass
    private_directory(data_dir)
    with contextlib.suppress(FileExistsError):  # another process of this node wrote it first
        private_file(path, secrets.token_hex(8).encode())
    return _read_node_id(path)


def _read_node_id(path: Path) -> str:
    node = path.read_text().strip()
    if not node or not node.isalnum():
        raise ValueError(f"{path} does not hold a node id")
    return node


def _tighten(path: Path, mode: int) -> None:
    current = stat.S_IMODE(path.stat().st_mode)
    if current & 0o077 == 0:  # already closed to group and others
        return
    try:
        os.chmod(path, mode)
    except PermissionError:  # another user's: say so, and carry on as before
        log.error("%s is open to others (%o) and not ours to change", path, current)
        return
    log.warning("tightened %s from %o to %o", path, current, mode)
