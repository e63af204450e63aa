"""``trunkline serve --workers N``: N event-loop processes sharing the HTTP and SIP ports.

The supervisor prepares what the workers share (data directory, migrations, the
master key, the node id, the repair of crash-left recordings) so they do not
race over it, then starts each worker as its own ``trunkline serve`` with
``TRUNKLINE_WORKER_OF=N`` and its slot ``TRUNKLINE_WORKER_SLOT`` (0..N-1, the
same at every start), which binds the HTTP and SIP ports with SO_REUSEPORT.
The kernel spreads new connections and SIP sources over the workers; each
worker owns the calls it answers or places (its outbound signalling uses a port
of its own, so replies come back to it), at start ends those its slot left live
when the last run stopped, and passes an API hang-up for a sibling's call to
its owner (``owner_channel``). SIGTERM/SIGINT are passed on; the supervisor
exits 0 when every worker did.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from types import FrameType

from trunkline.config import ENV_PREFIX, Settings, setting_text, setting_values
from trunkline.crypto import load_master_key
from trunkline.data_dir import load_node_id, secure_data_dir
from trunkline.media.recording import repair_partials
from trunkline.storage import open_repository

log = logging.getLogger("trunkline.supervisor")


def settings_environment(settings: Settings) -> dict[str, str]:
    """Every setting as the environment variable a worker reads it from."""
    return {
        f"{ENV_PREFIX}{name.upper()}": setting_text(value)
        for name, value in setting_values(settings).items()
    }


async def _prepare(settings: Settings) -> None:
    secure_data_dir(settings.data_dir)
    load_master_key(settings.secret_key, settings.data_dir)  # created once, here
    load_node_id(settings.data_dir)
    # Before any worker writes recordings: each one's own are not to be touched by the others.
    repaired = repair_partials(settings.data_dir / "recordings")
    if repaired:
        log.warning("repaired %d recordings left by a crash", repaired)
    repository = await open_repository(settings.database_url, migrate=True)
    await repository.close()


def supervise(settings: Settings) -> int:
    asyncio.run(_prepare(settings))
    env = dict(os.environ)
    env.pop(f"{ENV_PREFIX}CONFIG", None)
    env.update(settings_environment(settings))
    env[f"{ENV_PREFIX}WORKERS"] = "1"
    env[f"{ENV_PREFIX}WORKER_OF"] = str(settings.process.workers)
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "trunkline", "serve"],
            env={**env, f"{ENV_PREFIX}WORKER_SLOT": str(slot)},
        )
        for slot in range(settings.process.workers)
    ]
    log.info("started %d workers: %s", len(workers), [w.pid for w in workers])

    def forward(signum: int, frame: FrameType | None) -> None:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [worker.wait() for worker in workers]
    if all(code == 0 for code in codes):
        return 0
    return 2 if 2 in codes else 1  # 2: a worker could not start (it printed why)
