"""benchmarks._cpu_quota: the kernel holds a process under the group's quota."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._cpu_quota import CpuQuota
from tests.conftest import require

SPIN = "import time\nend = time.monotonic() + 1.5\nwhile time.monotonic() < end: pass\n"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_spinning_process_gets_no_more_than_its_quota_and_the_throttling_is_counted() -> None:
    quota = CpuQuota.create("test", 20.0)
    require(quota is not None, "a writable CPU cgroup (root)")
    assert quota is not None
    try:
        assert CpuQuota.at(quota.path).percent == 20.0
        spinner = subprocess.Popen([sys.executable, "-c", SPIN])
        quota.add(spinner.pid)
        started = time.monotonic()
        time.sleep(1.0)
        used = cpu_seconds(spinner.pid) / (time.monotonic() - started)
        spinner.wait(10)
        assert used < 0.5  # a free spinner takes a whole core; 20 % allowed (+ start-up)
        throttling = quota.throttling()
        assert throttling["periods"] > 0 and throttling["throttled_periods"] > 0
        assert throttling["throttled_seconds"] > 0
    finally:
        quota.remove()
    assert not quota.path.exists()
