"""Every shell and Python example in README.md and docs/*.md runs against a live trunkline.

How the examples are run (the convention every doc follows):

- Fenced blocks tagged ``sh``, ``bash``, ``shell``, ``console`` or ``python``
  are examples. Other tags (``text``, ``json``, ``toml``, none) are shown, not run.
- The examples of one file run in document order in one ``bash`` with ``set -euo
  pipefail``, so a variable one block sets (``ORG=$(trunkline org create …)``)
  is there for the next; a failing command fails the test, naming the block.
  ``console`` blocks run their ``$ ``-prefixed lines. A ``python`` block runs as
  its own ``python`` process inside that same script (it sees the exported
  variables) after a prelude that defines ``TOKEN`` and ``TRUNKLINE_URL`` from
  the environment.
- The test starts a real ``trunkline serve`` (HTTP on a free loopback port,
  SQLite in a fresh ``$XDG_DATA_HOME/trunkline``, the default data directory,
  so the documented CLI commands find the daemon's database) and exports
  ``TRUNKLINE_URL`` (its base URL) and ``TOKEN`` (an admin token of an
  organisation with the identities ``sales`` and ``support``). The server runs
  with the development settings on (``ws://`` and loopback agent and webhook
  URLs allowed), speech off, and a number pool with a New York range. In the
  examples ``http://127.0.0.1:8080`` and ``localhost:8080`` are rewritten to
  the live address; ``trunkline`` is the command of this checkout.
- A block that cannot run here (it builds a virtualenv, starts a second
  server, needs Docker or a carrier, runs for minutes) is marked on the line
  before its fence with ``<!-- docs-test: skip (the reason) -->``. The reason is
  required, and a marker not followed by an example block fails the test, so
  nothing is skipped silently; ``test_skipped_examples_say_why`` lists them.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
RUN_LANGUAGES = frozenset({"sh", "bash", "shell", "console", "python"})
SKIP_MARKER = re.compile(r"^<!--\s*docs-test:\s*skip\s*\((?P<reason>[^)]*)\)\s*-->$")
ANY_MARKER = re.compile(r"^<!--\s*docs-test")
FENCE = re.compile(r"^(?P<fence>```+|~~~+)\s*(?P<language>[\w+-]*)(?:\s+[^`]*)?$")
BLOCK_NOTE = "::docs-test block::"
DOCUMENTED_URLS = ("http://127.0.0.1:8080", "http://localhost:8080")
# The docs' examples provision numbers in a US state (NY); the embedded pool's default
# 555 numbers have none, so the live server's pool also has a New York range.
NUMBER_POOL = "+15550100000-+15550100999,+12125550100-+12125550199"
FILE_SECONDS = 240
PYTHON_PRELUDE = (
    "import os\nTOKEN = os.environ['TOKEN']\nTRUNKLINE_URL = os.environ['TRUNKLINE_URL']\n"
)


@dataclass(frozen=True, slots=True)
class Example:
    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    skip_reason: str | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def examples_in(path: Path) -> list[Example]:
    """The runnable-language blocks of one Markdown file, with their skip markers."""
    lines = path.read_text().splitlines()
    found: list[Example] = []
    pending: tuple[int, str] | None = None  # a skip marker waiting for its block
    index = 0
    while index < len(lines):
        line = lines[index].rstrip()  # markers start the line; indented text is an example
        marker = SKIP_MARKER.match(line)
        if marker:
            reason = marker.group("reason").strip()
            assert reason, f"{path.name}:{index + 1}: a docs-test skip needs a reason"
            pending = (index + 1, reason)
            index += 1
            continue
        assert not ANY_MARKER.match(line), (
            f"{path.name}:{index + 1}: malformed marker; write <!-- docs-test: skip (reason) -->"
        )
        fence = FENCE.match(line.strip())
        if fence is None:
            if line and pending is not None:
                raise AssertionError(
                    f"{path.name}:{pending[0]}: docs-test marker not followed by a code block"
                )
            index += 1
            continue
        closing = fence.group("fence")
        body: list[str] = []
        end = index + 1
        while end < len(lines) and lines[end].strip() != closing:
            body.append(lines[end])
            end += 1
        language = fence.group("language").lower()
        if language in RUN_LANGUAGES:
            reason = pending[1] if pending is not None else None
            found.append(Example(path, index + 1, language, "\n".join(body), reason))
        elif pending is not None:
            raise AssertionError(
                f"{path.name}:{pending[0]}: docs-test marker before a {language or 'plain'}"
                " block, which is not run anyway"
            )
        pending = None
        index = end + 1
    assert pending is None, f"{path.name}:{pending[0]}: docs-test marker at the end of the file"
    return found


def shell_text(example: Example, base_url: str) -> str:
    """The example as lines of the file's bash script."""
    text = example.text
    for documented in DOCUMENTED_URLS:
        text = text.replace(documented, base_url)
    if example.language == "console":
        commands = [line[2:] for line in text.splitlines() if line.startswith("$ ")]
        text = "\n".join(commands)
    if example.language == "python":
        delimiter = "DOCS_TEST_PYTHON_EOF"
        assert delimiter not in text
        return f"{sys.executable} - <<'{delimiter}'\n{PYTHON_PRELUDE}{text}\n{delimiter}"
    return text


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class LiveTrunkline:
    base_url: str
    env: dict[str, str]  # what the examples run with


def cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "trunkline", *args],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return result.stdout.strip().splitlines()[-1]


def wait_ready(base_url: str, process: subprocess.Popen[bytes], deadline_s: float = 60) -> None:
    end = time.monotonic() + deadline_s
    while True:
        assert process.poll() is None, "trunkline serve exited during start-up"
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < end, "trunkline serve did not answer /healthz"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveTrunkline]:
    home = tmp_path_factory.mktemp("docs-examples")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUNKLINE_")}
    http_port = free_port()
    env.update(
        XDG_DATA_HOME=str(home / "data-home"),
        PATH=os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", ""))),
        TRUNKLINE_HOST="127.0.0.1",
        TRUNKLINE_HTTP_PORT=str(http_port),
        TRUNKLINE_SIP_HOST="127.0.0.1",
        TRUNKLINE_SIP_PORT=str(free_port(socket.SOCK_DGRAM)),
        TRUNKLINE_NUMBER_POOL=NUMBER_POOL,
        TRUNKLINE_TRANSCRIPTION="off",
        TRUNKLINE_TEXT_TO_SPEECH="off",
        TRUNKLINE_ALLOW_INSECURE_URLS="1",
        TRUNKLINE_ALLOW_PRIVATE_TARGETS="1",
    )
    base_url = f"http://127.0.0.1:{http_port}"
    log = (home / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "trunkline", "serve"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        try:
            wait_ready(base_url, process)
        except AssertionError as exc:
            raise AssertionError(f"{exc}:\n{(home / 'serve.log').read_text()[-4000:]}") from None
        org = cli(env, "org", "create", "--name", "docs")
        for handle in ("sales", "support"):
            cli(env, "identity", "create", "--org", org, "--handle", handle)
        token = cli(env, "token", "create", "--org", org)
        yield LiveTrunkline(base_url, {**env, "TRUNKLINE_URL": base_url, "TOKEN": token})
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


def test_skipped_examples_say_why() -> None:
    """Every skip has its reason; the list is printed for whoever reads the test log."""
    skipped = [e for path in DOCS for e in examples_in(path) if e.skip_reason is not None]
    for example in skipped:
        assert example.skip_reason and len(example.skip_reason) >= 10, example.where
        print(f"not run: {example.where} ({example.skip_reason})")
    runnable = [e for path in DOCS for e in examples_in(path) if e.skip_reason is None]
    assert runnable, "no doc example runs"


@pytest.mark.timeout(FILE_SECONDS + 60)
@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_examples_run_against_a_live_trunkline(path: Path, live: LiveTrunkline) -> None:
    examples = [e for e in examples_in(path) if e.skip_reason is None]
    if not examples:
        return  # nothing to run in this file (its skips are checked above)
    assert shutil.which("bash"), "bash runs the examples"
    script = ["set -euo pipefail"]
    for number, example in enumerate(examples):
        script.append(f"echo '{BLOCK_NOTE}{number}' >&2")
        script.append(shell_text(example, live.base_url))
    result = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=ROOT, env=live.env, capture_output=True, text=True, timeout=FILE_SECONDS,
    )  # fmt: skip
    if result.returncode != 0:
        reached = [line for line in result.stderr.splitlines() if line.startswith(BLOCK_NOTE)]
        failed = examples[int(reached[-1].removeprefix(BLOCK_NOTE))] if reached else examples[0]
        pytest.fail(
            f"the example at {failed.where} failed (exit {result.returncode}):\n"
            f"{failed.text}\n--- stdout\n{result.stdout[-4000:]}\n--- stderr\n"
            f"{result.stderr[-4000:]}"
        )
