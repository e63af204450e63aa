"""Many UDP datagrams per system call: ``sendmmsg`` and ``recvmmsg`` (Linux) through ctypes.

The benchmark carrier sends every call's RTP from one socket. Sending a 20 ms
tick's packets one ``sendto`` at a time costs a system call (and a Python call)
per packet; ``sendmmsg`` takes a batch of them, each with its own destination,
and ``recvmmsg`` drains a batch the same way. The message headers are built
once over fixed buffers (numpy arrays that never move), so a batch costs one
ctypes call and no allocation.

A receiver can ask the kernel for each datagram's arrival time
(``SO_TIMESTAMPNS``): a batch drained a millisecond after it came still
says when each datagram arrived, so the reader need not wake per datagram.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import socket
from typing import Any

import numpy as np
import numpy.typing as npt

SOCKADDR_IN_SIZE = 16
MSG_DONTWAIT = 0x40
SO_TIMESTAMPNS = 35  # Linux: SOL_SOCKET option; the control message has the same type
# One control message: ``struct cmsghdr`` (size_t length, int level, int type) then a
# ``struct timespec`` (two 64-bit fields), 16 bytes each on 64-bit Linux.
CONTROL_SIZE = 32


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_Iovec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint)]


_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_sendmmsg = _libc.sendmmsg
_sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
_sendmmsg.restype = ctypes.c_int
_recvmmsg = _libc.recvmmsg
_recvmmsg.argtypes = [
    ctypes.c_int,
    ctypes.POINTER(_Mmsghdr),
    ctypes.c_uint,
    ctypes.c_int,
    ctypes.c_void_p,
]
_recvmmsg.restype = ctypes.c_int
_NAMELEN_OFFSET = _Msghdr.msg_namelen.offset
_CONTROLLEN_OFFSET = _Msghdr.msg_controllen.offset
_MSG_LEN_OFFSET = _Mmsghdr.msg_len.offset


def sockaddr_in(host: str, port: int) -> bytes:
    """``struct sockaddr_in`` for an IPv4 address (family in host order, the rest in network)."""
    return (
        socket.AF_INET.to_bytes(2, "little")
        + port.to_bytes(2, "big")
        + socket.inet_aton(host)
        + bytes(8)
    )


def _address(array: npt.NDArray[Any]) -> int:
    return int(array.__array_interface__["data"][0])


class BatchSender:
    """Sends rows of a packet matrix, each to its own address, in batches of ``sendmmsg``.

    ``packets`` (rows × bytes, C-contiguous) and ``addresses`` (rows × 16:
    ``sockaddr_in``) are the caller's and must stay alive and in place; the
    message headers point into them. ``select`` chooses which rows go out and
    in which order; each later ``send`` call then sends ``lengths`` bytes of
    each selected row.
    """

    def __init__(
        self, sock: socket.socket, packets: npt.NDArray[np.uint8], addresses: npt.NDArray[np.uint8]
    ) -> None:
        if not (packets.flags.c_contiguous and addresses.flags.c_contiguous):
            raise ValueError("packets and addresses must be C-contiguous")
        self.fd = sock.fileno()
        self.packets = packets
        self.addresses = addresses
        self.count = 0
        self._iovecs = (_Iovec * 0)()
        self._headers = (_Mmsghdr * 0)()

    def select(self, rows: npt.NDArray[np.intp], length: int) -> None:
        """The rows the next sends carry (``length`` bytes of each), in this order."""
        count = len(rows)
        self._iovecs = (_Iovec * count)()
        self._headers = (_Mmsghdr * count)()
        base, stride = _address(self.packets), self.packets.strides[0]
        names, name_stride = _address(self.addresses), self.addresses.strides[0]
        for slot, row in enumerate(rows.tolist()):
            self._iovecs[slot].iov_base = base + row * stride
            self._iovecs[slot].iov_len = length
            header = self._headers[slot].msg_hdr
            header.msg_name = names + row * name_stride
            header.msg_namelen = SOCKADDR_IN_SIZE
            header.msg_iov = ctypes.pointer(self._iovecs[slot])
            header.msg_iovlen = 1
        self.count = count

    def send(self, start: int = 0, stop: int | None = None) -> int:
        """Send the selected rows ``start`` to ``stop``; return how many the kernel took.

        A full socket buffer (EAGAIN) ends the batch early; the caller counts
        what was not sent.
        """
        stop = self.count if stop is None else min(stop, self.count)
        sent = start
        while sent < stop:
            at = ctypes.addressof(self._headers) + sent * ctypes.sizeof(_Mmsghdr)
            done = _sendmmsg(self.fd, at, stop - sent, MSG_DONTWAIT)
            if done < 0:
                code = ctypes.get_errno()
                if code == errno.EINTR:
                    continue
                if code in (errno.EAGAIN, errno.ENOBUFS):
                    break
                raise OSError(code, f"sendmmsg: {errno.errorcode.get(code, code)}")
            sent += done
        return sent - start


class BatchReceiver:
    """Drains a UDP socket with ``recvmmsg`` into a fixed buffer of ``slots`` × ``size`` bytes.

    After :meth:`receive` returned ``n``, rows ``0..n`` of :attr:`buffer` hold
    the datagrams (each cut at ``size`` bytes), :attr:`lengths` their lengths
    and :attr:`ports` their source ports.
    """

    def __init__(
        self, sock: socket.socket, slots: int = 256, size: int = 512, timestamps: bool = False
    ) -> None:
        self.fd = sock.fileno()
        self.slots = slots
        self.size = size
        self.timestamps = timestamps
        self.buffer = np.zeros((slots, size), dtype=np.uint8)
        self.names = np.zeros((slots, SOCKADDR_IN_SIZE), dtype=np.uint8)
        self.control = np.zeros((slots, CONTROL_SIZE), dtype=np.uint8)
        self._iovecs = (_Iovec * slots)()
        self._headers = (_Mmsghdr * slots)()
        base, names, control = _address(self.buffer), _address(self.names), _address(self.control)
        for slot in range(slots):
            self._iovecs[slot].iov_base = base + slot * size
            self._iovecs[slot].iov_len = size
            header = self._headers[slot].msg_hdr
            header.msg_name = names + slot * SOCKADDR_IN_SIZE
            header.msg_iov = ctypes.pointer(self._iovecs[slot])
            header.msg_iovlen = 1
            if timestamps:
                header.msg_control = control + slot * CONTROL_SIZE
        if timestamps:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        raw = np.frombuffer(memoryview(self._headers).cast("B"), dtype=np.uint8).reshape(
            slots, ctypes.sizeof(_Mmsghdr)
        )
        self._namelens = raw[:, _NAMELEN_OFFSET : _NAMELEN_OFFSET + 4].view(np.uint32)[:, 0]
        self._controllens = raw[:, _CONTROLLEN_OFFSET : _CONTROLLEN_OFFSET + 8].view(np.uint64)[
            :, 0
        ]
        self._lengths = raw[:, _MSG_LEN_OFFSET : _MSG_LEN_OFFSET + 4].view(np.uint32)[:, 0]

    def receive(self) -> int:
        """Read what is waiting (at most ``slots`` datagrams) without blocking; 0: nothing."""
        self._namelens[:] = SOCKADDR_IN_SIZE
        if self.timestamps:
            self._controllens[:] = CONTROL_SIZE  # the kernel leaves what it wrote there
            self.control[:] = 0
        while True:
            count = _recvmmsg(self.fd, self._headers, self.slots, MSG_DONTWAIT, None)
            if count >= 0:
                return int(count)
            code = ctypes.get_errno()
            if code == errno.EINTR:
                continue
            if code in (errno.EAGAIN, errno.EWOULDBLOCK):
                return 0
            raise OSError(code, f"recvmmsg: {errno.errorcode.get(code, code)}")

    @property
    def lengths(self) -> npt.NDArray[np.uint32]:
        return self._lengths

    def arrivals_ns(self, count: int) -> npt.NDArray[np.int64]:
        """The kernel's arrival times (``CLOCK_REALTIME``, ns) of the first ``count``
        datagrams, 0 where it gave none (a receiver made without ``timestamps``)."""
        control = self.control[:count]
        header = control[:, :16]
        stamped = (
            (header[:, :8].view(np.uint64)[:, 0] == 16 + 16)  # CMSG_LEN(timespec)
            & (header[:, 8:12].view(np.int32)[:, 0] == socket.SOL_SOCKET)
            & (header[:, 12:16].view(np.int32)[:, 0] == SO_TIMESTAMPNS)
        )
        times = np.ascontiguousarray(control[:, 16:32]).view(np.int64)
        return np.where(stamped, times[:, 0] * 1_000_000_000 + times[:, 1], 0)

    @property
    def ports(self) -> npt.NDArray[np.uint16]:
        """Source ports of the slots (network order decoded)."""
        return self.names[:, 2:4].copy().view(">u2")[:, 0].astype(np.uint16)
