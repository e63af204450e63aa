"""A CPU quota for a measured process: at most a set share of one core, by a Linux cgroup.

On a machine with no core to spare, pinning alone cannot make a node the limit
of a cluster: the shared parts (SIP balancer, database, load generators) take
the CPU a node would use, and the machine runs full before any node does. A
quota gives each node a fixed budget well inside the machine, so adding a node
adds one budget's worth of capacity and the machine keeps headroom for the
rest. The budget is enforced by the kernel's CFS bandwidth control: in every
``PERIOD_US`` the group may run ``percent`` % of it, then waits for the next
period. The period is short (10 ms, half a media tick) so a throttled node
pauses for milliseconds, not for the 100 ms of the kernel's default.

cgroup v1 (``/sys/fs/cgroup/cpu``) and v2 (a ``cpu.max`` file under
``/sys/fs/cgroup``) are both used where writable; elsewhere
:meth:`CpuQuota.create` returns None and the caller says that no quota applied.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

PERIOD_US = 10_000
CGROUP_ROOT = Path("/sys/fs/cgroup")
V1_CPU = CGROUP_ROOT / "cpu"


@dataclass
class CpuQuota:
    path: Path
    percent: float
    v2: bool

    @classmethod
    def create(cls, name: str, percent: float) -> CpuQuota | None:
        """A new group allowed ``percent`` % of one core, or None where cgroups are not writable."""
        quota_us = max(1000, round(PERIOD_US * percent / 100))
        leaf = f"trunkline-bench-{os.getpid()}-{name}"
        if (V1_CPU / "cpu.cfs_quota_us").exists():
            path = V1_CPU / leaf
            try:
                path.mkdir()
                (path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
                (path / "cpu.cfs_quota_us").write_text(str(quota_us))
            except OSError:
                _remove(path)
                return None
            return cls(path, percent, v2=False)
        if (CGROUP_ROOT / "cgroup.controllers").exists():
            path = CGROUP_ROOT / leaf
            try:
                path.mkdir()
                (path / "cpu.max").write_text(f"{quota_us} {PERIOD_US}")
            except OSError:
                _remove(path)
                return None
            return cls(path, percent, v2=True)
        return None

    @classmethod
    def at(cls, path: Path) -> CpuQuota:
        """The group a :meth:`create` made (in another process), by its directory."""
        if (path / "cpu.max").exists():
            quota, _, period = (path / "cpu.max").read_text().partition(" ")
            return cls(path, 100 * float(quota) / float(period), v2=True)
        quota_us = float((path / "cpu.cfs_quota_us").read_text())
        period_us = float((path / "cpu.cfs_period_us").read_text())
        return cls(path, 100 * quota_us / period_us, v2=False)

    def add(self, pid: int) -> None:
        """Put ``pid`` (and the children it starts from now on) under the quota."""
        (self.path / "cgroup.procs").write_text(str(pid))

    def throttling(self) -> dict[str, float]:
        """Periods counted, periods in which the quota ran out, and seconds spent throttled."""
        fields: dict[str, float] = {}
        with contextlib.suppress(OSError):
            for line in (self.path / "cpu.stat").read_text().splitlines():
                name, _, value = line.partition(" ")
                if value.strip().isdigit():
                    fields[name] = float(value)
        throttled_ns = fields.get("throttled_time", fields.get("throttled_usec", 0.0) * 1000)
        return {
            "periods": fields.get("nr_periods", 0.0),
            "throttled_periods": fields.get("nr_throttled", 0.0),
            "throttled_seconds": throttled_ns / 1e9,
        }

    def remove(self) -> None:
        """Move what still runs in the group back to the root group and delete the group."""
        parent = self.path.parent
        with contextlib.suppress(OSError):
            for pid in (self.path / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (parent / "cgroup.procs").write_text(pid)
        _remove(self.path)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()
