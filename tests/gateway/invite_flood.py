"""A carrier that floods one number with INVITEs, as a separate process (``python -m``).

It sends ``--count`` INVITEs over ``--seconds`` in small batches, retransmits
the unanswered ones every second (RFC 3261 timer A, simplified), ACKs every
final response and prints ``{"final": {status: count}, "unanswered": n}`` as
JSON once every INVITE has a final response or ``--wait`` seconds have passed
since the last one was sent. It runs outside the test's event loop so that the
carrier's own work does not compete with the gateway under test.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import select
import socket
import time
from collections import Counter

BATCH = 25
RESEND_AFTER = 1.0
_STATUS = re.compile(rb"^SIP/2\.0 (\d{3}) ")
_CALL_ID = re.compile(rb"\r\nCall-ID: *([^\r]+)\r\n", re.IGNORECASE)
_TO = re.compile(rb"\r\nTo: *([^\r]+)\r\n", re.IGNORECASE)

SDP = (
    "v=0\r\no=carrier 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


def _request(method: str, number: str, port: int, own: int, call_id: str, to: str) -> bytes:
    branch = "z9hG4bK" + call_id.split("@")[0]
    body = SDP if method == "INVITE" else ""
    lines = [
        f"{method} sip:{number}@127.0.0.1:{port} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{own};branch={branch}",
        f"From: <sip:+14155550123@127.0.0.1>;tag={call_id[:8]}",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: 1 {method}",
        "Max-Forwards: 70",
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def flood(port: int, number: str, count: int, seconds: float, wait: float) -> dict[str, object]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    own = sock.getsockname()[1]
    target = ("127.0.0.1", port)
    to = f"<sip:{number}@127.0.0.1>"
    invites: dict[str, bytes] = {}
    sent_at: dict[str, float] = {}
    final: dict[str, int] = {}

    def receive(until: float) -> None:
        while True:
            timeout = until - time.monotonic()
            if timeout <= 0 or not select.select([sock], [], [], timeout)[0]:
                return
            while True:
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    break
                status, call_id = _STATUS.match(data), _CALL_ID.search(data)
                if status is None or call_id is None or int(status.group(1)) < 200:
                    continue
                key = call_id.group(1).decode()
                if key not in invites:
                    continue
                final.setdefault(key, int(status.group(1)))
                to_tag = _TO.search(data)
                ack_to = to_tag.group(1).decode() if to_tag else to
                sock.sendto(_request("ACK", number, port, own, key, ack_to), target)

    started = time.monotonic()
    for index, first in enumerate(range(0, count, BATCH)):
        for serial in range(first, min(first + BATCH, count)):
            call_id = f"{serial:05d}{secrets.token_hex(6)}@flood"
            invites[call_id] = _request("INVITE", number, port, own, call_id, to)
            sent_at[call_id] = time.monotonic()
            sock.sendto(invites[call_id], target)
        receive(started + (index + 1) * seconds * BATCH / count)
    deadline = time.monotonic() + wait
    while len(final) < count and time.monotonic() < deadline:
        now = time.monotonic()
        for call_id, invite in invites.items():
            if call_id not in final and now - sent_at[call_id] > RESEND_AFTER:
                sent_at[call_id] = now
                sock.sendto(invite, target)
        receive(now + 0.2)
    receive(time.monotonic() + 0.2)  # ACK what is still arriving
    sock.close()
    return {
        "final": dict(Counter(str(s) for s in final.values())),
        "unanswered": count - len(final),
        "seconds": round(time.monotonic() - started, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--number", required=True)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--wait", type=float, default=20.0)
    args = parser.parse_args()
    print(json.dumps(flood(args.port, args.number, args.count, args.seconds, args.wait)))


if __name__ == "__main__":
    main()
