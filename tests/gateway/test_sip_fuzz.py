"""A bounded fuzz of trunkline's SIP port: mutated torture messages over UDP on loopback.

A seeded RNG mutates the corpus (byte flips, truncation, duplicated or dropped header
lines, random bytes of random length, odd Content-Length values) into a few thousand
datagrams. trunkline must log no error, send only well-formed responses, keep its
transaction and call tables bounded, answer OPTIONS afterwards, and give back the
memory the fuzz cost once the SIP timers have passed.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import tracemalloc

import pytest

from tests.gateway.conftest import Trunkline
from tests.gateway.sip_peer import bind_udp
from tests.sip.torture_corpus import CORPUS
from trunkline.gateway.sip.message import SipResponse, parse_message
from trunkline.gateway.sip.transaction import T1, T4

SEED = 4475
DATAGRAMS = 3000
BATCH = 25  # datagrams sent before trunkline is given a turn of the loop
MEMORY_LEFT_BEHIND = 4 * 1024 * 1024  # bytes still held once every transaction is over
PROBE_BRANCH = "z9hG4bKprobe"


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to three random edits of a message; the branch and Call-ID are made fresh first."""
    fresh = rng.getrandbits(48).to_bytes(6, "big").hex().encode()
    data = data.replace(b"z9hG4bK", b"z9hG4bK" + fresh).replace(b"7f3a@", fresh + b"@")
    for _ in range(rng.randint(1, 3)):
        data = rng.choice(MUTATIONS)(data, rng)
    return data[:65_535]


def flip_bytes(data: bytes, rng: random.Random) -> bytes:
    edited = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if edited:
            edited[rng.randrange(len(edited))] = rng.randrange(256)
    return bytes(edited)


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def duplicate_line(data: bytes, rng: random.Random) -> bytes:
    lines = data.split(b"\r\n")
    index = rng.randrange(len(lines))
    lines.insert(index, lines[rng.randrange(len(lines))])
    return b"\r\n".join(lines)


def drop_line(data: bytes, rng: random.Random) -> bytes:
    lines = data.split(b"\r\n")
    del lines[rng.randrange(len(lines))]
    return b"\r\n".join(lines)


def insert_random(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(data) + 1)
    noise = rng.randbytes(rng.choice((1, 4, 64, 1024, rng.randrange(8192))))
    return data[:at] + noise + data[at:]


def odd_content_length(data: bytes, rng: random.Random) -> bytes:
    value = rng.choice((b"-1", b"0", b"99999", b"1e3", b"", b"18446744073709551616", b"7"))
    head, separator, body = data.partition(b"Content-Length:")
    if not separator:
        return data
    return head + separator + b" " + value + b"\r\n" + body.partition(b"\r\n")[2]


def swap_separators(data: bytes, rng: random.Random) -> bytes:
    old, new = rng.choice(
        ((b":", b" "), (b";", b";;"), (b"<", b""), (b" ", b"  "), (b"\r\n", b"\n"))
    )
    return data.replace(old, new, rng.randint(1, 3))


MUTATIONS = (
    flip_bytes,
    truncate,
    duplicate_line,
    drop_line,
    insert_random,
    odd_content_length,
    swap_separators,
)


async def probe_answer(queue: asyncio.Queue[bytes]) -> SipResponse:
    """The answer to the probe: a fuzzed INVITE still in its call flow may answer later."""
    async with asyncio.timeout(5.0):
        while True:
            answer = parse_message(await queue.get())
            assert isinstance(answer, SipResponse)
            if PROBE_BRANCH in (answer.headers.get("via") or ""):
                return answer


async def test_fuzzed_datagrams_get_well_formed_answers_and_leave_nothing_behind(
    trunkline: Trunkline, caplog: pytest.LogCaptureFixture
) -> None:
    await trunkline.number("auto_reject", None)  # the datagrams come from a trusted source
    endpoint = trunkline.gateway.endpoint
    transport, inbox, _ = await bind_udp()
    target = ("127.0.0.1", trunkline.sip_port)
    rng = random.Random(SEED)
    bases = [case.data for case in CORPUS]
    statuses: dict[int, int] = {}

    def read_answers() -> None:
        while not inbox.queue.empty():
            response = parse_message(inbox.queue.get_nowait())
            assert isinstance(response, SipResponse)
            statuses[response.status] = statuses.get(response.status, 0) + 1

    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        with caplog.at_level(logging.ERROR):
            for sent in range(DATAGRAMS):
                transport.sendto(mutate(rng.choice(bases), rng), target)
                if sent % BATCH == BATCH - 1:
                    await asyncio.sleep(0.002)  # trunkline reads the batch
                    read_answers()
            await asyncio.sleep(1.0)  # the INVITEs still in their call flow are answered
            read_answers()
            assert endpoint.transactions <= DATAGRAMS
            assert len(trunkline.gateway.calls) <= DATAGRAMS
            # Still serving.
            probe = CORPUS[[case.name for case in CORPUS].index("lwsdisp")].data
            transport.sendto(probe.replace(b"z9hG4bK", PROBE_BRANCH.encode()), target)
            answer = await probe_answer(inbox.queue)
            assert answer.status == 200
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors == []
        # Every kind of answer was drawn: the fuzz reached past the parser.
        assert {400, 200, 405, 603}.issubset(statuses), statuses
        for _ in range(50):  # the calls the fuzz started are all over
            if not trunkline.gateway.calls:
                break
            await asyncio.sleep(0.1)
        assert trunkline.gateway.calls == {}
        later = asyncio.get_running_loop().time() + 64 * T1 + T4 + 1
        endpoint.now = lambda: later  # past every SIP timer
        endpoint.fire_timers()
        assert endpoint.transactions == 0
        gc.collect()
        left_behind = tracemalloc.get_traced_memory()[0] - baseline
        assert left_behind < MEMORY_LEFT_BEHIND, left_behind
    finally:
        tracemalloc.stop()
        transport.close()
