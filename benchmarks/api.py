"""Control-API latency and throughput on a realistically full database.

    python -m benchmarks.api [--texts 1000000] [--segments 100000] [--backends sqlite,postgresql]

For each backend: bulk-load texts (Zipf-distributed vocabulary, thousands of
remote parties) and transcript segments onto one number, start a real
``trunkline serve`` process on loopback (one process, one core), then measure
with sequential requests the p50/p99 latency of listing, searching and
conversations, and with 8 requests in flight the requests per second. The
search p99 on SQLite is compared with its 20 ms target. Results go to
``benchmarks/results/api.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from benchmarks._report import RESULTS_DIR, percentile, print_table, write_results
from trunkline.crypto import hash_token, new_token
from trunkline.storage.models import PhoneNumber, new_id
from trunkline.storage.postgres import PostgresRepository
from trunkline.storage.sql import SqlRepository
from trunkline.storage.sqlite import SqliteRepository

POSTGRES_URL = os.environ.get(
    "TRUNKLINE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
SEARCH_P99_TARGET_MS = 20.0
BATCH = 20_000
REMOTE_PARTIES = 5_000
SEGMENTS_PER_CALL = 100
VOCABULARY_SIZE = 5_000
CONCURRENCY = 8


def vocabulary(rng: random.Random) -> tuple[list[str], list[float]]:
    syllables = ["ka", "lo", "mi", "ne", "ru", "ta", "shi", "po", "ve", "da", "zu", "fe"]
    words: set[str] = set()
    while len(words) < VOCABULARY_SIZE:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    ordered = sorted(words)
    rng.shuffle(ordered)
    weights = [1.0 / (rank + 1) for rank in range(len(ordered))]  # Zipf, like real language
    return ordered, weights


def sentences(rng: random.Random, words: list[str], weights: list[float]) -> Iterator[str]:
    while True:
        yield " ".join(rng.choices(words, weights, k=rng.randint(6, 18)))


async def open_backend(backend: str, workdir: Path) -> tuple[SqlRepository, str, str | None]:
    """The repository, the database URL for the server process, and a schema to drop."""
    if backend == "sqlite":
        path = workdir / "bench.db"
        return await SqliteRepository.open(path), f"sqlite:///{path}", None
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(POSTGRES_URL)
    await connection.execute(f"CREATE SCHEMA {schema}")
    await connection.close()
    repository = await PostgresRepository.open(POSTGRES_URL, search_path=schema)
    separator = "&" if "?" in POSTGRES_URL else "?"
    return repository, f"{POSTGRES_URL}{separator}search_path={schema}", schema


async def drop_schema(schema: str) -> None:
    connection = await asyncpg.connect(POSTGRES_URL)
    await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    await connection.close()


async def load(
    repository: SqlRepository, texts: int, segments: int, rng: random.Random
) -> dict[str, Any]:
    await repository.migrate()
    organization = await repository.create_organization("bench")
    token = new_token()
    await repository.create_token(organization.id, None, hash_token(token))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    number = await repository.create_number(
        PhoneNumber(
            id=new_id(),
            organization_id=organization.id,
            number="+15550100000",
            type="local",
            status="active",
            incoming_call_action="auto_reject",
            client_websocket_url=None,
            incoming_call_webhook_url=None,
            agent_identity_id=None,
            state="NY",
            country="US",
            created_at=start,
            updated_at=start,
        ),
        max_active=10,
    )
    words, weights = vocabulary(rng)
    bodies = sentences(rng, words, weights)
    remotes = [f"+1415{n:07d}" for n in rng.sample(range(10_000_000), REMOTE_PARTIES)]
    text_columns = [
        "id",
        "organization_id",
        "phone_number_id",
        "direction",
        "local_phone_number",
        "remote_phone_number",
        "text",
        "type",
        "media",
        "status",
        "is_read",
        "carrier_message_id",
        "created_at",
        "updated_at",
    ]

    def text_rows(first: int, count: int) -> Iterator[tuple[Any, ...]]:
        for index in range(first, first + count):
            at = start + timedelta(seconds=index * 2)
            yield (
                new_id(),
                organization.id,
                number.id,
                "inbound" if index % 3 else "outbound",
                number.number,
                rng.choice(remotes),
                next(bodies),
                "sms",
                None,
                "active",
                rng.random() < 0.8,
                new_id(),
                at,
                at,
            )

    began = time.perf_counter()
    for first in range(0, texts, BATCH):
        await repository.bulk_insert(
            "texts", text_columns, text_rows(first, min(BATCH, texts - first))
        )
    call_ids: list[str] = []
    calls = max(1, segments // SEGMENTS_PER_CALL)
    call_columns = [
        "id",
        "organization_id",
        "phone_number_id",
        "local_phone_number",
        "remote_phone_number",
        "direction",
        "status",
        "client_websocket_url",
        "hangup_reason",
        "started_at",
        "ended_at",
        "created_at",
        "updated_at",
    ]
    call_rows = []
    for index in range(calls):
        at = start + timedelta(minutes=index)
        call_ids.append(new_id())
        call_rows.append(
            (
                call_ids[-1],
                organization.id,
                number.id,
                number.number,
                rng.choice(remotes),
                "inbound",
                "completed",
                "wss://agent.example.com/ws",
                "remote",
                at,
                at + timedelta(minutes=3),
                at,
                at,
            )
        )
    await repository.bulk_insert("calls", call_columns, call_rows)
    segment_columns = ["id", "call_id", "seq", "ts_ms", "party", "text", "created_at"]

    def segment_rows() -> Iterator[tuple[Any, ...]]:
        for call_id in call_ids:
            for seq in range(SEGMENTS_PER_CALL):
                party = "remote" if seq % 2 else "local"
                yield (new_id(), call_id, seq, seq * 2500, party, next(bodies), start)

    await repository.bulk_insert("transcript_segments", segment_columns, segment_rows())
    await repository.rebuild_summaries()
    return {
        "token": token,
        "number_id": number.id,
        "call_id": call_ids[0],
        "words": words[:300],  # the commonest words: realistic queries, and the hardest ones
        "load_seconds": time.perf_counter() - began,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(database_url: str, data_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = dict(
        os.environ,
        TRUNKLINE_DATABASE_URL=database_url,
        TRUNKLINE_HOST="127.0.0.1",
        TRUNKLINE_SIP_HOST="127.0.0.1",
        TRUNKLINE_SIP_PORT=str(free_port()),
        TRUNKLINE_LOG_LEVEL="warning",
        TRUNKLINE_API_RATE_PER_SECOND="1000000",  # measure the server, not the limiter
        TRUNKLINE_API_RATE_BURST="1000000",
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trunkline",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return process, port


async def wait_ready(session: aiohttp.ClientSession, base: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            async with session.get(f"{base}/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        await asyncio.sleep(0.1)


async def measure(
    base: str, loaded: dict[str, Any], requests: int, rng: random.Random
) -> dict[str, dict[str, float]]:
    api = f"{base}/api/v1/phone/numbers/{loaded['number_id']}"
    words: list[str] = loaded["words"]
    operations = {
        "list_texts": lambda: f"{api}/texts?limit=50",
        "list_unread_texts": lambda: f"{api}/texts?limit=50&is_read=false",
        "search_texts": lambda: f"{api}/texts/search?q={rng.choice(words)}&limit=50",
        "conversations": lambda: f"{api}/texts/conversations?limit=50",
        "search_transcripts": lambda: f"{api}/search?q={rng.choice(words)}&limit=50",
        "call_transcript": lambda: f"{base}/api/v1/phone/calls/{loaded['call_id']}/transcripts",
    }
    headers = {"X-API-Key": loaded["token"]}
    results: dict[str, dict[str, float]] = {}
    async with aiohttp.ClientSession(headers=headers) as session:
        await wait_ready(session, base)
        for name, url in operations.items():
            for _ in range(10):  # warm caches and connections
                async with session.get(url()) as response:
                    await response.read()
            latencies: list[float] = []
            for _ in range(requests):
                began = time.perf_counter()
                async with session.get(url()) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{name}: HTTP {response.status}")
                latencies.append((time.perf_counter() - began) * 1000)
            rps = await throughput(session, url, requests)
            results[name] = {
                "p50_ms": percentile(latencies, 0.50),
                "p99_ms": percentile(latencies, 0.99),
                "requests_per_second": rps,
            }
    return results


async def throughput(session: aiohttp.ClientSession, url: Any, requests: int) -> float:
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            async with session.get(url()) as response:
                await response.read()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return requests / (time.perf_counter() - began)


async def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(20261124)
    with tempfile.TemporaryDirectory(prefix="trunkline-bench-") as folder:
        workdir = Path(folder)
        repository, database_url, schema = await open_backend(backend, workdir)
        try:
            print(f"[{backend}] loading {args.texts:,} texts, {args.segments:,} segments …")
            loaded = await load(repository, args.texts, args.segments, rng)
            await repository.close()
            print(f"[{backend}] loaded in {loaded['load_seconds']:.0f} s; measuring")
            process, port = start_server(database_url, workdir / "data")
            try:
                operations = await measure(f"http://127.0.0.1:{port}", loaded, args.requests, rng)
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
        finally:
            if schema is not None:
                await drop_schema(schema)
    return {"load_seconds": loaded["load_seconds"], "operations": operations}


async def main_async(args: argparse.Namespace) -> None:
    results: dict[str, Any] = {
        "texts": args.texts,
        "transcript_segments": args.segments,
        "requests_per_operation": args.requests,
        "concurrency_for_rps": CONCURRENCY,
        "backends": {},
    }
    rows = []
    for backend in args.backends.split(","):
        measured = await run_backend(backend, args)
        results["backends"][backend] = measured
        for name, figures in measured["operations"].items():
            rows.append(
                [
                    backend,
                    name,
                    figures["p50_ms"],
                    figures["p99_ms"],
                    figures["requests_per_second"],
                ]
            )
    print()
    print_table(["backend", "operation", "p50 ms", "p99 ms", "req/s"], rows)
    sqlite = results["backends"].get("sqlite")
    if sqlite is not None:
        p99 = sqlite["operations"]["search_texts"]["p99_ms"]
        ratio = SEARCH_P99_TARGET_MS / p99
        results["sqlite_search_p99_target_ms"] = SEARCH_P99_TARGET_MS
        results["sqlite_search_p99_target_ratio"] = ratio
        verdict = "meets" if ratio >= 1 else "misses"
        print(
            f"\nSQLite text search p99 {p99:.2f} ms: {verdict} the {SEARCH_P99_TARGET_MS:.0f} ms"
            f" target (target/p99 = {ratio:.2f})"
        )
    write_results("api", _merged_with_earlier_backends(results))


def _merged_with_earlier_backends(results: dict[str, Any]) -> dict[str, Any]:
    """Keep other backends' figures from the last run when only some were measured now."""
    path = RESULTS_DIR / "api.json"
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        return results
    if earlier.get("texts") != results["texts"]:
        return results
    for backend, figures in earlier.get("backends", {}).items():
        if backend not in results["backends"]:
            figures["measured_at"] = earlier.get("measured_at")
            results["backends"][backend] = figures
    for key in ("sqlite_search_p99_target_ms", "sqlite_search_p99_target_ratio"):
        if key in earlier and key not in results:
            results[key] = earlier[key]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=1_000_000)
    parser.add_argument("--segments", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=400, help="per operation")
    parser.add_argument("--backends", default="sqlite,postgresql")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
