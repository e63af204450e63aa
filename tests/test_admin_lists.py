"""``trunkline org list``, ``identity list``, ``number list`` and ``calls tail`` on both backends."""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.test_admin_tokens import Run, database_url, run  # noqa: F401 (fixtures)
from trunkline.crypto import SecretBox
from trunkline.storage import open_repository
from trunkline.storage.models import Call, PhoneNumber, new_id, utcnow

TAIL_SECONDS = 60.0


def add_number(url: str, org_id: str, identity_id: str, e164: str, trunk: bool) -> str:
    async def store() -> str:
        repository = await open_repository(url)
        try:
            now = utcnow()
            number = PhoneNumber(
                id=new_id(),
                organization_id=org_id,
                number=e164,
                type="local",
                status="active",
                incoming_call_action="auto_accept",
                client_websocket_url="wss://agent.example/ws",
                incoming_call_webhook_url=None,
                agent_identity_id=identity_id,
                state=None,
                country="US",
                created_at=now,
                updated_at=now,
                provider="twilio" if trunk else None,
                trunk_address="sip.example.com" if trunk else None,
                auth_password_encrypted=SecretBox(b"k" * 32).encrypt("pw") if trunk else None,
            )
            return (await repository.create_number(number, max_active=10)).id
        finally:
            await repository.close()

    return asyncio.run(store())


def table(output: str) -> list[dict[str, str]]:
    header, *rows = output.splitlines()
    names = header.split("\t")
    return [dict(zip(names, row.split("\t"), strict=True)) for row in rows]


def test_org_identity_and_number_lists(run: Run, database_url: str) -> None:  # noqa: F811
    code, listing, _ = run("org", "list")
    assert (code, listing) == (0, "id\tname\tcreated_at")
    _, acme, _ = run("org", "create", "--name", "Acme")
    _, globex, _ = run("org", "create", "--name", "Globex Corp")
    _, sales, _ = run("identity", "create", "--org", acme, "--handle", "sales")
    _, support, _ = run(
        "identity", "create", "--org", globex, "--handle", "support", "--display-name", "Help"
    )
    code, listing, _ = run("org", "list")
    assert code == 0
    assert [(row["id"], row["name"]) for row in table(listing)] == [
        (acme, "Acme"),
        (globex, "Globex Corp"),
    ]

    code, listing, _ = run("identity", "list")
    assert code == 0
    assert [
        (r["id"], r["organization"], r["handle"], r["display_name"]) for r in table(listing)
    ] == [
        (sales, acme, "@sales", "-"),
        (support, globex, "@support", "Help"),
    ]
    code, listing, _ = run("identity", "list", "--org", globex)
    assert [row["id"] for row in table(listing)] == [support]

    plain = add_number(database_url, acme, sales, "+15550100001", trunk=False)
    byo = add_number(database_url, globex, support, "+15739693824", trunk=True)
    code, listing, _ = run("number", "list")
    assert code == 0 and "pw" not in listing
    rows = {row["id"]: row for row in table(listing)}
    assert rows[plain] == {
        "id": plain,
        "organization": acme,
        "number": "+15550100001",
        "type": "local",
        "status": "active",
        "agent": "@sales",
        "incoming_call_action": "auto_accept",
        "provider": "-",
        "trunk": "-",
    }
    assert (rows[byo]["provider"], rows[byo]["trunk"]) == (
        "twilio",
        "sip.example.com (password set)",
    )
    code, listing, _ = run("number", "list", "--org", acme)
    assert [row["id"] for row in table(listing)] == [plain]

    for command in (("identity", "list"), ("number", "list"), ("calls", "tail")):
        code, out, err = run(*command, "--org", "nope")
        assert (code, out, err) == (1, "", "trunkline: no organisation nope")


class Tail:
    """``trunkline calls tail --follow`` as a process, its stdout lines gathered by a thread."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "trunkline", "calls", "tail", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def next_line(self) -> str:
        return self.lines.get(timeout=TAIL_SECONDS)

    def stop(self) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        assert self.process.stderr is not None
        return code, self.process.stderr.read()


def test_calls_tail_prints_recent_calls_then_follows_changes(
    run: Run,  # noqa: F811
    database_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    _, org_id, _ = run("org", "create", "--name", "Acme")
    _, identity_id, _ = run("identity", "create", "--org", org_id, "--handle", "sales")
    number_id = add_number(database_url, org_id, identity_id, "+15550100002", trunk=False)

    async def repository_do(action: str, call_id: str = "") -> str:
        repository = await open_repository(database_url)
        try:
            number = await repository.get_number(number_id)
            assert number is not None
            if action == "create":
                call = Call.initiated(
                    number, remote_phone_number="+15557654321", direction="inbound"
                )
                return (await repository.create_call(call)).id
            changes: dict[str, object] = {"status": action}
            if action == "failed":
                changes["failure_detail"] = "486 Busy Here"
            updated = await repository.update_call(call_id, changes)
            assert updated is not None
            return call_id
        finally:
            await repository.close()

    earlier = asyncio.run(repository_do("create"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUNKLINE_")}
    env.update(TRUNKLINE_DATABASE_URL=database_url, TRUNKLINE_DATA_DIR=str(tmp_path / "data"))

    once = subprocess.run(
        [sys.executable, "-m", "trunkline", "calls", "tail", "--org", org_id],
        env=env, capture_output=True, text=True, timeout=TAIL_SECONDS,
    )  # fmt: skip
    assert once.returncode == 0, once.stderr
    rows = table(once.stdout)
    assert [(r["call"], r["status"], r["remote"]) for r in rows] == [
        (earlier, "initiated", "+15557654321")
    ]

    tail = Tail(["--follow", "--interval", "0.1", "--lines", "5"], env)
    try:
        assert tail.next_line().startswith("updated_at\tcall\t")
        assert tail.next_line().split("\t")[1] == earlier
        started = time.monotonic()
        live = asyncio.run(repository_do("create"))
        fields = tail.next_line().split("\t")
        assert (fields[1], fields[3], fields[6]) == (live, "inbound", "initiated")
        asyncio.run(repository_do("ringing", live))
        assert tail.next_line().split("\t")[1:7:5] == [live, "ringing"]
        asyncio.run(repository_do("failed", live))
        fields = tail.next_line().split("\t")
        assert (fields[1], fields[6], fields[8]) == (live, "failed", "486 Busy Here")
        assert time.monotonic() - started < TAIL_SECONDS
        assert tail.lines.empty()  # the unchanged call is not repeated
    finally:
        code, stderr = tail.stop()
    assert code == 0 and "Traceback" not in stderr, stderr
