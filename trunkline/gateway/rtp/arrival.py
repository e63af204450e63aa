"""When a datagram really arrived: the kernel's receive timestamp of a socket's last read.

A packet's arrival time feeds the RFC 3550 interarrival jitter and the jitter
buffer's target depth. Taken when the packet is handled, it includes however
long the event loop was busy elsewhere (a garbage collection, a burst of call
set-ups): a 30 ms stall makes every call's next packet look 30 ms late, the
jitter estimates jump, and the buffers hold a frame more — 20 ms of delay the
network never caused.

On Linux every received datagram carries the time the kernel took it in.
``SIOCGSTAMPNS`` reads it for the last datagram the socket handed over — the
one being handled, since the event loop calls the protocol right after each
read. It costs a system call, so the receiver asks only for a packet that
looks more than a few milliseconds out of step with the one before
(``reception.RETIME_SAMPLES``). The first ask on a socket switches the
stamping on (``KernelArrival.of`` makes it at bind time); when it is the
first socket of the machine to want stamps, the kernel turns them on a
moment later, and a datagram read before that has the time it was read.

Elsewhere (or on a socket that refuses), there is no clock here and arrivals
are the handling time, as before. Calls on the shared RTP port have none
either: it reads datagrams in batches, and the socket's last stamp is the
batch's last datagram's.
"""

from __future__ import annotations

import struct
import sys
import time
from typing import Any

try:
    from fcntl import ioctl
except ImportError:  # not a Unix: ``KernelArrival.of`` gives no clock there
    ioctl = None  # type: ignore[assignment]

SIOCGSTAMPNS = 0x8907  # Linux: struct timespec of the last datagram read
_TIMESPEC = struct.Struct("@qq")
_EMPTY = bytes(_TIMESPEC.size)
MAX_AGE_NS = 1_000_000_000  # a stamp older than this is not the packet being handled


class KernelArrival:
    """``arrival(now)``: when the datagram just read came in, on ``now``'s clock."""

    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @classmethod
    def of(cls, transport: Any) -> KernelArrival | None:
        """The clock of a datagram transport's socket, stamping switched on; None where the
        kernel does not stamp (not Linux, or no socket)."""
        if ioctl is None or not sys.platform.startswith("linux"):
            return None
        sock = transport.get_extra_info("socket")
        if sock is None:
            return None
        arrival = cls(sock.fileno())
        try:
            arrival._stamp()
        except FileNotFoundError:
            pass  # nothing read yet: stamping is on from now
        except OSError:
            return None
        return arrival

    def _stamp(self) -> int:
        seconds, nanoseconds = _TIMESPEC.unpack(ioctl(self._fd, SIOCGSTAMPNS, _EMPTY))
        return seconds * 1_000_000_000 + nanoseconds

    def __call__(self, now: float) -> float:
        """``now`` (monotonic seconds, taken as the datagram was handled) less how long the
        datagram waited in the socket; ``now`` itself when the kernel cannot say."""
        try:
            stamp = self._stamp()
        except OSError:
            return now
        waited = time.time_ns() - stamp
        if not 0 < waited < MAX_AGE_NS:
            return now
        return now - waited / 1e9
