"""Which cores the system under test runs on, and which the load generators use.

On a machine with two or more usable cores the process measured (``trunkline
serve`` and its workers, or the bare floor relay that stands in for it) is
pinned to its own cores with ``os.sched_setaffinity``, and everything else —
the echo agent, the carrier and the orchestrating process — to the rest, so
the load generators do not take CPU time from what is measured. Child
processes inherit their parent's affinity, so pinning the orchestrator to the
generators' cores first and starting the measured process with
:func:`CoreSplit.pin_system` is all it takes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class CoreSplit:
    system: tuple[int, ...]
    generators: tuple[int, ...]

    def describe(self) -> dict[str, list[int]]:
        return {"system_under_test": list(self.system), "load_generators": list(self.generators)}

    def pin_system(self) -> Callable[[], None]:
        """A ``preexec_fn`` that moves the new process (and so its children) to the system cores."""
        system = set(self.system)
        return lambda: os.sched_setaffinity(0, system)

    def repin_system(self, pids: Iterable[int]) -> None:
        """Move processes that already run (the workers of a measured server) to the system cores."""
        for pid in pids:
            try:
                os.sched_setaffinity(pid, set(self.system))
            except OSError:
                continue  # exited meanwhile


def split_cores(system_cores: int) -> CoreSplit | None:
    """Give ``system_cores`` cores (at most all but one) to the system under test.

    Pins the calling process to the remaining cores. None on a one-core machine:
    there is nothing to split and nothing is pinned.
    """
    usable = sorted(os.sched_getaffinity(0))
    if len(usable) < 2:
        return None
    count = max(1, min(system_cores, len(usable) - 1))
    split = CoreSplit(tuple(usable[:count]), tuple(usable[count:]))
    os.sched_setaffinity(0, set(split.generators))
    return split
