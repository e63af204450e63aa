"""Write docs/performance.md from the result files under benchmarks/results/.

    python -m benchmarks.report

Run it after any benchmark so the document shows the figures on disk.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

from benchmarks._report import RESULTS_DIR

DOC = Path(__file__).resolve().parent.parent / "docs" / "performance.md"


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def number(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}" if abs(value) < 1000 else f"{value:,.0f}"


def machine(result: dict[str, Any]) -> str:
    m = result.get("machine", {})
    return f"{m.get('cpus')} CPUs, {m.get('machine')}, {m.get('implementation')} {m.get('python')}"


def codecs_section(result: dict[str, Any]) -> str:
    rows = [
        [
            op["operation"],
            number(op["trunkline_ns_per_frame"], 0),
            number(op["reference_ns_per_frame"], 0),
            number(op["reference_over_trunkline"]),
        ]
        for op in result["operations"]
    ]
    return f"""## Codecs — `python -m benchmarks.codecs`

Nanoseconds per 20 ms frame (160 samples at 8 kHz), measured {result["measured_at"][:10]}
on {machine(result)}. The reference is the `audioop` call where one exists
(`ratecv` for resampling: linear interpolation with no anti-aliasing filter), a
straightforward pure-Python version otherwise; the ratio is reference time ÷
trunkline time (above 1: trunkline is faster).

{table(["operation", "trunkline ns/frame", "reference ns/frame", "ratio"], rows)}

- μ-law carrier to a μ-law agent does no codec work at all (pass-through).
- Frame-sized G.711 conversions are `audioop` itself behind a length check;
  large buffers are encoded by table lookup, about 8× faster than `audioop`.
- Resampling is a 2 ms-delay polyphase filter with 70 dB of stop-band
  attenuation, one call per chunk into the C extension (`fir_interpolate`,
  `fir_decimate`): about 2.5 µs per frame at 8 ⇄ 16 kHz, near the cost of
  `ratecv`'s unfiltered interpolation — about 0.025 % of a core per PCM16
  call for both directions. (It was 9–12 µs with numpy, which the pure-Python
  twin still uses; libsoxr was about 3.5 µs per frame but held back 26–66 ms.)
- The `*_into` and DTMF rows are slower than their references per call (numpy
  call overhead; a validated object per event); neither is per-frame work.
"""


def frame_cost_section(result: dict[str, Any]) -> str:
    profiles = result["profiles"]
    kinds = list(profiles[0]["instructions_per_frame_pair"])
    rows = []
    for profile in profiles:
        figures = profile["instructions_per_frame_pair"]
        spreads = profile.get("spread", {})
        c = figures["C extension"]
        rows.append(
            [profile["profile"]]
            + [with_spread(spreads.get(kind) or figures.get(kind), 0) for kind in kinds]
            + [
                f"{(1 - c / figures[kind]) * 100:.0f} %" if figures.get(kind) else "–"
                for kind in kinds[1:]
            ]
        )
    headers = ["profile", *kinds] + [f"C saves vs {kind}" for kind in kinds[1:]]
    runs = result.get("runs", 1)
    return f"""## Media path instructions — `python -m benchmarks.frame_cost`

{provenance(result)}
CPU instructions per frame pair, counted by callgrind: one call's real media
objects (RTP endpoint and session, media session, Inkbox persona, agent link —
websockets' protocol for the handshake, the link's own frame reader after it —,
playout, the 20 ms tick, RTP leg) on fake transports;
a frame pair is one caller RTP packet in and its `media` frame out to the
agent, plus one agent `media` frame in and its RTP packet out. Of
{result["frames"]:,} pairs, callgrind counts those after the first tenth (the
warm-up) and nothing else: it is zeroed and dumped at marker calls around
them, so start-up and imports, whose 1.9 billion instructions vary by about
1 % from one process to the next, are not in the count. The call's clock is
the workload's own, 20 ms per pair (packet arrivals and the media clock), so
the jitter buffer takes the same path on any machine. Each figure is the
median of {runs} processes, min–max beside it: the count is reproducible to a
few instructions per pair, so a change of a few hundred is a real one. This
is the figure to compare on a shared machine; timings move with its load.
*C extension* is `trunkline._speedups` (`trunkline/speedups.py`), *pure
Python* its twin (`TRUNKLINE_NO_SPEEDUPS=1`), a baseline (`--baseline REF`)
the code as committed at REF with its C extension built from its own sources.
`recording` adds the recorder's caller and slot taps (decode to PCM16, the
writer thread).

{table(headers, rows)}

- In C: RTP header parse and build (each packet a new bytes object: a
  transport may queue it, so building into a reused buffer would need a copy),
  the `media` frame's base64 written straight into its JSON template (one
  allocation; three bytes are two lookups in a table of character pairs),
  the agent's `media` frames read without `json.loads` in one pass over the
  payload (anything of another shape falls back to the full parser),
  client WebSocket framing and masking with mask keys from a pooled
  `os.urandom` buffer, the agent's usual frames (final, unfragmented text and
  binary) split out of what its socket delivered (`agent/server_frames.py`
  reads any other frame in Python: fragments, pings, pongs, close frames,
  protocol errors), the jitter buffer (`_jitter_core.c`: push, RFC 4733
  events, pull, the target's rise and decay, shrinking, its histograms — the
  Python `PyJitterBuffer` is its twin, held to the same frames and readings
  after every tick by `tests/rtp/test_jitter_twins.py`), and the RTP session's
  inbound checks and outbound packetiser (`_rtp_core.c`: header, payload
  type, order, RFC 3550 statistics, the push into the jitter buffer, one call
  per packet; sequence number, RTP time, marker and counters, one call per
  20 ms slot — the Python `PyRtpReceiver` and `PyRtpSender` are their twins,
  `tests/rtp/test_reception_twins.py`, `tests/rtp/test_sending_twins.py`).
- What is left is Python, about half of the count in the interpreter's
  bytecode loop alone: some 30 Python calls per frame pair, the call's own
  logic, no single part dominant — the RTP source check, the play-on-arrival
  chain and its deadlines, the persona's calls, the link's send checks, the
  playout and the tick. The latency probes time one frame in 16.
{since_note(result["commit"], load("load"))}{baseline_note(profiles)}- callgrind counts user-space instructions only; the system calls per frame
  (the load section below) are not in these figures. The
  pure-Python twin exists so that an install without a compiler works, not
  to be faster.
{binary_note(profiles)}"""


# What the media path gained since 21ff010, each with the commit that brought it: the load
# section below names the commit it was measured at, and this says what came after it.
MEDIA_PATH_CHANGES = [
    ("bcffc64", "the jitter buffer runs in C"),
    ("fc3dfc8", "the agent's `media` payload is decoded in one pass"),
    ("d51f5fd", "RTP packets are built as new objects, not into a buffer that was then copied"),
    ("ef192e1", "an inbound packet's checks are one C call (`RtpReceiver`)"),
    ("9f6ecf7", "each slot's outbound packet is one C call (`RtpSender`)"),
    ("a9b03a6", "three Python calls fewer per frame pair on the play-on-arrival paths"),
    ("b687ccf", "base64 by character pairs"),
]


def since_note(counted_at: str, load_result: dict[str, Any] | None) -> str:
    """What the frame-cost figures (counted at ``counted_at``) have that the load figures'
    commit did not."""
    if load_result is None:
        return ""
    measured = str(load_result.get("commit", ""))

    def has(commit: str, change: str) -> bool | None:
        done = subprocess.run(
            ["git", "merge-base", "--is-ancestor", change, commit],
            cwd=DOC.parent.parent, capture_output=True,
        )  # fmt: skip
        return {0: True, 1: False}.get(done.returncode)  # None: a commit git does not know

    changes = [
        what
        for change, what in MEDIA_PATH_CHANGES
        if has(counted_at, change) and has(measured, change) is False
    ]
    if not changes:
        return ""
    return (
        textwrap.fill(
            f"- Since {measured[:7]}, the commit the load figures below were measured at: "
            + "; ".join(changes)
            + ".",
            width=78,
            subsequent_indent="  ",
        )
        + "\n"
    )


def baseline_note(profiles: list[dict[str, Any]]) -> str:
    """What changed against the baseline, per profile, when one was counted."""
    kinds = [k for k in profiles[0]["instructions_per_frame_pair"] if k.startswith("baseline")]
    if not kinds:
        return ""
    kind = kinds[0]
    changes = ", ".join(
        f"`{p['profile']}` {number(p['instructions_per_frame_pair']['C extension'], 0)} against"
        f" {number(p['instructions_per_frame_pair'][kind], 0)}"
        f" ({(p['instructions_per_frame_pair']['C extension'] / p['instructions_per_frame_pair'][kind] - 1) * 100:+.0f} %)"
        for p in profiles
        if p["instructions_per_frame_pair"].get(kind)
    )
    return f"""- Against *{kind}*, with the C extension: {changes}.
"""


def binary_note(profiles: list[dict[str, Any]]) -> str:
    """What binary media frames save against ``mulaw``'s JSON frames, when both were measured."""
    by_name = {p["profile"]: p["instructions_per_frame_pair"] for p in profiles}
    if "binary" not in by_name or "mulaw" not in by_name:
        return ""

    def change(kind: str) -> str:
        saved = 1 - by_name["binary"][kind] / by_name["mulaw"][kind]
        return f"{abs(saved) * 100:.0f} % {'fewer' if saved >= 0 else 'more'}"

    older = [kind for kind, value in by_name["binary"].items() if value is None]
    predates = f" *{', '.join(older)}* predates binary media frames (–)." if older else ""
    return f"""- `binary` is `mulaw` with binary media frames both ways (the agent accepted
  `X-Trunkline-Media-Frames: binary`, `docs/media-stream.md`): raw μ-law in
  binary WebSocket frames, no base64 and no JSON either way. It takes
  {change("C extension")} instructions per frame pair than `mulaw`'s JSON frames with the
  C extension, {change("pure Python")} with the pure-Python twin.{predates}
"""


def api_section(result: dict[str, Any]) -> str:
    rows = []
    for backend, data in result["backends"].items():
        for operation, figures in data["operations"].items():
            rows.append(
                [
                    backend,
                    operation,
                    number(figures["p50_ms"]),
                    number(figures["p99_ms"]),
                    number(figures["requests_per_second"], 0),
                ]
            )
    ratio = result.get("sqlite_search_p99_target_ratio")
    return f"""## Control API — `python -m benchmarks.api`

A real `trunkline serve` process (one core) over a database holding
{result["texts"]:,} texts and {result["transcript_segments"]:,} transcript segments;
{result["requests_per_operation"]} sequential requests per operation for the percentiles,
{result["concurrency_for_rps"]} in flight for throughput ({machine(result)}).
Target: text search p99 ≤ {result["sqlite_search_p99_target_ms"]:.0f} ms on SQLite —
target ÷ measured p99 = {number(ratio)} (above 1 meets it).
`--backends postgresql` adds or refreshes the PostgreSQL rows (server on
127.0.0.1:5432); figures of other backends in the file are kept. The PostgreSQL
rows were measured while other work shared the machine; its text search ranks
with `ts_rank` over the newest 1,000 matches and is the slow case there.

{table(["backend", "operation", "p50 ms", "p99 ms", "req/s"], rows)}
"""


def provenance(result: dict[str, Any]) -> str:
    """Which code, command and machine a result file measured (and whether the code was committed)."""
    commit = str(result.get("commit", "unknown"))[:12]
    line = (
        f"Measured {result['measured_at'][:10]} at commit `{commit}` on {machine(result)}"
        f" ({result.get('machine', {}).get('cpu_model', '?')}) with `{result.get('command', '?')}`."
    )
    if result.get("uncommitted_changes"):
        line += " **The code measured differed from that commit: these figures are provisional.**"
    return line


def cores_line(result: dict[str, Any]) -> str:
    cores = result.get("cores")
    if not cores:
        return "trunkline and the load generators shared every core (nothing was pinned)."
    return (
        f"trunkline (or the floor relay) ran pinned to core(s) {cores['system_under_test']},"
        f" the agent and carrier to core(s) {cores['load_generators']}."
    )


def median_figure(value: Any) -> float | None:
    """A figure as published: the median of a ``{median, min, max}`` spread, or the value."""
    return value["median"] if isinstance(value, dict) else value


def with_spread(value: Any, digits: int = 2) -> str:
    if isinstance(value, dict):
        return (
            f"{number(value['median'], digits)} "
            f"({number(value['min'], digits)}–{number(value['max'], digits)})"
        )
    return number(value, digits)


def loss_cell(figures: dict[str, Any]) -> str:
    """Lost / sent, and per direction (→ agent, → carrier) where frame numbers measured it."""
    total = f"{figures['frames_lost']:,} / {figures['frames_sent']:,}"
    to_agent, to_carrier = figures.get("to_agent"), figures.get("to_carrier")
    if not to_agent or not to_carrier:
        return total
    method = " by count" if figures.get("loss_method", "").startswith("count") else ""
    return f"{total} ({to_agent['lost']:,} → agent, {to_carrier['lost']:,} → carrier{method})"


def bridge_section(result: dict[str, Any]) -> str:
    rows = []
    for agent_audio, data in result["formats"].items():
        for run in ("trunkline", "pure_python", "floor", "baseline"):
            if run not in data:
                continue
            figures = data[run]
            label = RUN_LABELS.get(run, run) if "pure_python" in data else run
            to_agent = figures.get("latency_to_agent_ms") or {}
            to_carrier = figures.get("latency_to_carrier_ms") or {}
            jitter = figures.get("pacing_jitter_ms") or {}
            rows.append(
                [
                    agent_audio,
                    label,
                    with_spread(figures["cpu_percent_per_call"], 3),
                    loss_cell(figures),
                    f"{number(to_agent.get('p50'))} / {number(to_agent.get('p99'))}",
                    f"{number(to_carrier.get('p50'))} / {number(to_carrier.get('p99'))}",
                    f"{number(jitter.get('p50'))} / {number(jitter.get('p99'))}",
                ]
            )
    ratios = ", ".join(
        f"{fmt}: {with_spread(data['cpu_ratio_to_floor'])}×"
        + (
            f" (pure Python {with_spread(data['pure_python_cpu_ratio_to_floor'])}×; C ÷ pure"
            f" Python {with_spread(data['cpu_ratio_to_pure_python'])}×)"
            if "pure_python" in data
            else ""
        )
        + (
            f"; C ÷ baseline {result['baseline']} {with_spread(data['cpu_ratio_to_baseline'])}×"
            if data.get("cpu_ratio_to_baseline")
            else ""
        )
        for fmt, data in result["formats"].items()
    )
    twin = any("pure_python" in data for data in result["formats"].values())
    kinds = "trunkline with its C extension, trunkline with its pure-Python twin and the floor"
    runs = result.get("runs", 1)
    return f"""## Media bridge — `python -m benchmarks.bridge`

{result["calls"]} concurrent calls for {result["seconds"]:.0f} s per agent format, {runs} runs
of each kind ({kinds if twin else "trunkline and floor"} alternating). {provenance(result)} {
        TWIN_NOTE if twin else ""
    }A real
`trunkline serve`, an echo agent and a SIP/RTP carrier, each in its own process;
{cores_line(result)} The floor is the same sockets and agent connections
relaying each packet at once with no gateway logic; for PCM16 it converts μ-law
8 kHz ⇄ PCM16 16 kHz per frame as trunkline does. CPU is per call, in percent of
one core: the median run, with min–max. Loss counts, by frame number, the frames
sent in the window that did not come back, over all runs, and splits them by
direction; PCM formats transcode the numbers away and are counted with quiet window
edges, split by the frames that reached the agent in the window. Latencies are one way, in ms (p50 / p99, from the median run), from stamps
carried in μ-law payloads. trunkline's →carrier figure includes waiting for the
call's clock slot and its pacing; from the commit that added the caller jitter
buffer on, its →agent figure includes the wait for the call's 20 ms tick and the
buffer's depth too (`docs/sip.md`, media quality); the floor forwards at once.
Call recording is on in the trunkline runs (the default).

{
        table(
            ["format", "run", "CPU %/call", "lost / sent", "→agent ms", "→carrier ms", "jitter ms"],
            rows,
        )
    }

trunkline's CPU per call as a multiple of the floor's, round by round (median, min–max) —
{ratios}. Target for μ-law pass-through: ≤ {result["target_cpu_percent_per_call"]} % of a core
per call.

{BRIDGE_ANALYSIS}"""


RUN_LABELS = {"trunkline": "trunkline (C)", "pure_python": "trunkline (pure Python)"}
TWIN_NOTE = """*C* runs trunkline with `trunkline._speedups`, *pure Python* with
`TRUNKLINE_NO_SPEEDUPS=1`; each run's process must say in its start-up log that it
runs the path it is labelled with, or the benchmark stops. """

BRIDGE_ANALYSIS = """In the run of 2026-12-04 at `21158ae` (an AMD EPYC machine slower than the one of the
"Whole system" run below: its floor relay cost 0.25 % of a core per μ-law call at these
100 calls, against 0.17 % on 2026-12-03), 100 recorded μ-law calls (the default) were
carried with no frame lost either way at 0.40 % of a core per call with the C extension,
1.7× the floor relay, with about 1 ms of latency p99 each way. *baseline* is trunkline as
committed at `21ff010`, the commit the "Whole system" figures below measured, with its C
extension built from its own sources, run in the same rounds: μ-law now costs 0.92×
(0.87–0.93 per round) of what it cost there, PCM16 16 kHz 0.87× (0.81–0.89), with nothing
lost. In between, the jitter buffer moved into the C extension, the agent's `media`
payload is decoded in one pass and RTP packets are built without a copy: 28–32 % fewer
instructions per frame pair in user space at that commit (frame_cost at 772ea55; the
inbound RTP checks in C, after this run, took 34–42 % off in all). The process's
CPU falls by less, 8–13 %, because the rest is the kernel's work for the same system
calls (the agent socket's writes and reads, which the floor pays too), the recorder's
thread and the event loop itself. The pure-Python twin costs 0.51 % per μ-law call and
0.84 % per PCM16 call (it filters with numpy).
"""


def speech_section(result: dict[str, Any]) -> str:
    if "median" not in result:
        return speech_section_single_run(result)
    m, live = result["median"], result["live"]
    n = live["concurrency"]
    wer = result["word_error_rate"]
    synthetic = wer["synthetic"]

    def ms(value: float | None) -> str:
        return "not reached" if value is None else f"{number(value, 0)} ms"

    rows = [
        ["word error rate, bundled voice",
         f"{number(synthetic['word_error_rate'] * 100, 1)} % ({synthetic['words']} words)", ""],
    ]  # fmt: skip
    targets = {"clean": "≤ 10 %", "20 dB SNR": "≤ 15 %"}
    for label, figures in wer["human"].get("conditions", {}).items():
        rows.append([f"word error rate, real speech over a phone line, {label}",
                     f"{number(figures['word_error_rate'] * 100, 1)} % "
                     f"({figures['words']} words)", targets.get(label, "")])  # fmt: skip
    rows += [
        ["end of caller speech → final transcript, 1 call, p50 / p95",
         f"{ms(m['one_call_p50_ms'])} / {ms(m['one_call_p95_ms'])}", "≤ 500 / ≤ 800 ms"],
        [f"end of caller speech → final transcript, {n} calls, p50 / p95",
         f"{ms(m['concurrency_p50_ms'])} / {ms(m['concurrency_p95_ms'])}", "≤ 500 / ≤ 800 ms"],
        ["first `text` delta → first audio, p50", ms(m["tts_first_audio_p50_ms"]), "≤ 300 ms"],
        ["transcribed calls one core carries (largest step carried)",
         number(m["transcribed_calls_per_core"] or 0, 0), "≥ 15"],
    ]  # fmt: skip
    reference = result.get("reference")
    if reference:
        rows += reference_rows(reference, wer["human"])
    met, missed = speech_targets(result)
    verdict = f"Targets met: {', '.join(met) or 'none'}. Not met: {', '.join(missed) or 'none'}."
    return f"""## Speech — `python -m benchmarks.speech`

Measured {result["measured_at"][:10]} on {machine(result)}: {result["engines"]["transcription"]},
piper voice `en_US-joe-medium`; median of {result["runs_count"]} runs. Real speech is the
LibriVox and CMU clips of Debian's `pocketsphinx-testdata`, through a 300–3400 Hz μ-law
line, clean and with white noise; both texts normalised before comparing. Latencies are
live: callers in real time, each talking half the time, every frame through its call's
own transcription (detector, partial passes every {live["partial_ms"]} ms, decoding ahead,
final) on one transcription worker (an engine that batches takes up to {live["batch"]}
utterances at a time) — the detector's hang-over, queueing and decoding included. A ramp step is carried when
its p95 stays within {number(live["max_p95_ms"], 0)} ms with no final refused.
Commit `{result.get("commit", "?")[:7]}`, `{result.get("command", "")}`.

{table(["figure", "value", "target"], rows)}

{verdict}

{SPEECH_ANALYSIS}"""


SPEECH_ANALYSIS = """In the run of 2026-12-03 (commit 4e0b35d) the recognizer is Moonshine tiny,
which replaced Whisper tiny.en as the default, and every target is met. One
call's final comes 260 ms p50 / 460 ms p95 after the caller's last word, 15
callers' 301 ms / 461 ms. The p50 is the 200 ms hang-over after a sentence
the partial transcript shows complete, plus decoding; the p95 is the plain
450 ms hang-over, for sentences the recognizer wrote without a final period
(the turn rules ignore Moonshine's final commas, which it writes after a fifth
of complete sentences: counted as trailing, they held those turns for 800 ms
and put the p95 at 820 ms at every concurrency). One worker on one core
carried 30, 40 and 30 callers in the three runs (40 is the top of the ramp),
with no final refused: past 25 callers the p95 grows (550–670 ms at 30,
670–960 ms at 40) as finals queue behind each other. First audio is 222 ms
p50.

What made the difference is the recognizer's cost. Moonshine's encoder reads
the audio as long as it is, where Whisper's reads a fixed 10 s window: on the
real-speech clips it needs 28 ms of CPU per second of speech against
Whisper's 68 ms in the same run (2.4× less), and a final of a 2–3 s sentence
takes 50–100 ms. It reads better too: 4.3 % WER clean and 7.5 % at 20 dB SNR
on real phone speech, against Whisper's 11.8 % and 15.1 %; 33.3 % at 10 dB
(46.2 %). On the bundled voice it reads 4.3 % against 3.3 %, most of it one
sentence ("We will arrive at eight o'clock tonight" heard as "We wore a rabid
eater clock to-night"); that voice's WER moves by a few words between runs
(2.0 % in the run before this one). Batching, which Whisper uses, is off for
Moonshine: its encoder attends to a batch's padding, so a padded utterance
reads differently, and on a CPU a batch cost what its utterances cost one by
one. The real-speech corpus is small (93 words), so a word is a point of WER.
"""


def reference_rows(reference: dict[str, Any], human: dict[str, Any]) -> list[list[str]]:
    """The other embedded engine's figures from the same run, and the cost ratio."""
    name = reference["engine"].split(" (")[0]
    rows = [[f"reference, {name}: word error rate, bundled voice",
             f"{number(reference['synthetic']['word_error_rate'] * 100, 1)} %", ""]]  # fmt: skip
    for label, figures in reference["human"].get("conditions", {}).items():
        rows.append([f"reference, {name}: word error rate, real speech, {label}",
                     f"{number(figures['word_error_rate'] * 100, 1)} %", ""])  # fmt: skip
    ours, theirs = (
        human.get("cpu_ms_per_speech_second"),
        reference["human"].get("cpu_ms_per_speech_second"),
    )
    if ours and theirs:
        rows.append(["CPU time per second of real speech, this engine / reference",
                     f"{number(ours, 1)} ms / {number(theirs, 1)} ms "
                     f"({number(theirs / ours, 2)}× less)", ""])  # fmt: skip
    return rows


def speech_targets(result: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The speech targets the result meets and those it misses, by name."""
    m, targets = result["median"], result["targets"]
    human = result["word_error_rate"]["human"].get("conditions", {})

    def wer(label: str) -> float | None:
        figures = human.get(label)
        return None if figures is None else figures["word_error_rate"]

    checks = [
        ("final p50 at 1 call", m["one_call_p50_ms"], targets["end_of_speech_to_final_p50_ms"]),
        ("final p95 at 1 call", m["one_call_p95_ms"], targets["end_of_speech_to_final_p95_ms"]),
        ("final p50 at the stated concurrency", m["concurrency_p50_ms"],
         targets["end_of_speech_to_final_p50_ms"]),
        ("final p95 at the stated concurrency", m["concurrency_p95_ms"],
         targets["end_of_speech_to_final_p95_ms"]),
        ("first audio p50", m["tts_first_audio_p50_ms"], targets["tts_first_audio_p50_ms"]),
        ("WER clean real speech", wer("clean"), targets["word_error_rate_clean_human"]),
        ("WER real speech at 20 dB", wer("20 dB SNR"), targets["word_error_rate_20db_human"]),
    ]  # fmt: skip
    met = [name for name, value, limit in checks if value is not None and value <= limit]
    missed = [name for name, value, limit in checks if value is None or value > limit]
    calls = m["transcribed_calls_per_core"] or 0
    (met if calls >= targets["transcribed_calls_per_core"] else missed).append("calls per core")
    return met, missed


def speech_section_single_run(result: dict[str, Any]) -> str:
    """The section for a result file of the former single-run format."""
    t = result["transcription"]
    tts = result["tts_first_audio_ms"]
    eos = t["end_of_speech_to_final_ms"]
    trials = "; ".join(
        f"{x['calls']} callers: p99 {number(x['latency_p99_ms'], 0)} ms, "
        f"{x['backlog_at_end']} waiting at the end"
        for x in result["sustained_trials"]
    )
    rows = [
        ["word error rate", f"{number(t['word_error_rate'] * 100, 1)} % "
         f"({t['words']} words, {t['sentences']} sentences)", "≤ 10 %"],
        ["transcription real-time factor (p50, 1 worker, 1 thread)", number(t["rtf_p50"]), ""],
        ["end of caller speech → final transcript, p50 / p99",
         f"{number(eos['p50'], 0)} / {number(eos['p99'], 0)} ms", ""],
        ["first `text` delta → first audio, p50 / p99",
         f"{number(tts['p50'], 0)} / {number(tts['p99'], 0)} ms", "p50 ≤ 300 ms"],
        ["transcribed calls one core sustains (estimate / trial)",
         f"{number(result['sustained_calls_per_core_estimate'], 1)} / "
         f"{result['sustained_calls_per_core']}", ""],
    ]  # fmt: skip
    return f"""## Speech — `python -m benchmarks.speech`

Measured {result["measured_at"][:10]} on {machine(result)}: {result["engines"]["transcription"]},
piper voice `en_US-joe-medium`. Sentences are spoken by the bundled voice,
carried as μ-law 8 kHz, cut by the call's voice activity detector and
transcribed; the end-of-speech latency includes the detector's 500 ms
hang-over. Text-to-speech latency is a call's real path fed an agent reply
streamed 6 characters every 10 ms.

{table(["figure", "value", "target"], rows)}

Real-time trials (callers speaking half the time, one transcription worker):
{trials}. What limits it: Whisper's CPU time per second of speech; more
`TRUNKLINE_TRANSCRIPTION_WORKERS` (one per spare core) or a cloud engine
(`TRUNKLINE_TRANSCRIPTION=http`) raise it.
"""


def capacity_step(profile: dict[str, Any]) -> dict[str, Any]:
    """The median ramp's step at the published capacity (its first step when none held)."""
    steps = profile["trunkline"]
    return next((x for x in steps if x["calls"] == profile["capacity_calls"]), steps[0])


def limit_note(profile: dict[str, Any], cores: int) -> str:
    """How busy trunkline was at capacity, and what broke at the next step (median ramp)."""
    at = capacity_step(profile)
    after = next((s for s in profile["trunkline"] if s["calls"] > profile["capacity_calls"]), None)
    notes = []
    busy = at.get("cpu_percent_total")
    if busy is not None and cores and profile["capacity_calls"]:
        notes.append(
            f"At {at['calls']} calls trunkline kept its {cores} core(s) {busy / cores:.0f} % busy."
        )
    if after is None:
        notes.append("The top step held: the ramp did not reach the limit.")
    elif after["broken"]:
        notes.append(f"At {after['calls']} calls: {'; '.join(after['broken'])}.")
    else:
        notes.append(f"{after['calls']} calls held in most runs, but not in the median one.")
    return " ".join(notes)


def load_variants(result: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(profile, label, figures) for each profile: the C extension's, then the pure-Python twin's."""
    variants = []
    for name, profile in result["profiles"].items():
        twin = profile.get("pure_python")
        variants.append((name, " (C)" if twin else "", profile))
        if twin:
            variants.append((name, " (pure Python)", twin | {"target_calls": None}))
    return variants


def load_section(result: dict[str, Any]) -> str:
    rows = []
    headline = result.get("headline_profile")
    for name, label, profile in load_variants(result):
        at = capacity_step(profile)
        added = at.get("added_latency_p99_ms", {})
        single = profile["capacity_calls"]  # a file from before --runs: one ramp
        capacities = profile.get("capacity_per_run") or {"median": single, "min": single,
                                                         "max": single}  # fmt: skip
        per_core = profile.get("calls_per_core")
        at_least = "" if profile.get("ramp_reached_limit", True) else "≥ "
        spread = at.get("spread", {}).get("cpu_percent_per_call")
        cpu = number(at["cpu_percent_per_call"])
        if spread:
            cpu += f" ({number(spread['min'])}–{number(spread['max'])})"
        loss = f"{number(at['loss'] * 100)} %"
        if at.get("to_agent") and at.get("to_carrier"):
            loss += (
                f" ({number(at['to_agent']['loss'] * 100)} / "
                f"{number(at['to_carrier']['loss'] * 100)})"
            )
        rows.append([
            f"**{name}**{label} (headline)" if name == headline else f"{name}{label}",
            f"{at_least}{capacities['median']} ({capacities['min']}–{capacities['max']})"
            if profile["capacity_calls"] else "0",
            str(profile.get("target_calls") or "–"),
            f"{at_least}{number(per_core['median'], 0)}" if per_core and capacities["median"]
            else "–",
            cpu, number(at.get("cpu_ratio_to_floor")), number(at["memory_kb_per_call"], 0), loss,
            f"{number(added.get('latency_to_agent_ms'), 1)} / "
            f"{number(added.get('latency_to_carrier_ms'), 1)}",
            number(at["setup_ms"]["p99"], 0),
        ])  # fmt: skip
    cores = len((result.get("cores") or {}).get("system_under_test") or [])
    stopped = "\n".join(
        f"- **{name}**{label}: {limit_note(profile, cores)} Per run: "
        + "; ".join(profile["limited_by"])
        for name, label, profile in load_variants(result)
    )
    checks = {
        n + label: p.get("promtool_check_under_load") for n, label, p in load_variants(result)
    }
    promtool = "passes" if all(c == "ok" for c in checks.values()) else f"{checks}"
    return f"""## Whole system — `python -m benchmarks.load`

{provenance(result)} {result["workers"]} trunkline process(es), each step held
{number(result["hold_seconds"], 0)} s, every profile ramped {result.get("runs", 1)} times.
{cores_line(result)} trunkline, the echo agent and the SIP/RTP carrier run as separate
processes, all traffic on loopback; callers send synthesized speech. {
        LOAD_TWIN_NOTE if any("pure_python" in p for p in result["profiles"].values()) else ""
    }{
        SHARED_FLOOR_NOTE if any(f.endswith("-shared") for f in result.get("floor") or {}) else ""
    }A step breaks the
objective when loss > 0.1 % (by frame number: the frames sent in the window that did not
come back), trunkline adds more than {
        number(result["objectives"]["max_latency_p99_ms"], 0)
    } ms to latency p99 either way (its p99 minus the
bare relay's in the same round at the same call count), or a call fails to set up; the
bare relay's own p99 above {number(result["objectives"].get("generator_latency_p99_ms", 20), 0)} ms
marks the step a machine limit. A run's
capacity is its last step before that. Figures are the median run's, never the best:
capacity is the median of the runs (min–max in brackets), the other columns are the median
of the runs' figures at that step. "Calls per core" is that capacity ÷ the cores trunkline
had to itself — calls actually carried within the objectives, not extrapolated from CPU
time; "≥" marks a profile whose ramp never broke (its top step held).

![CPU per call and latency p99 against concurrent calls](../benchmarks/results/load.png)

{
        table(
            [
                "profile",
                "capacity (calls)",
                "target",
                "calls per core",
                "CPU %/call",
                "× floor",
                "KB/call",
                "loss (→ agent / → carrier)",
                "added p99 → agent / → carrier (ms)",
                "set-up p99 (ms)",
            ],
            rows,
        )
    }

What the numbers show limits each profile (the median ramp; then what stopped each run):

{stopped}

`promtool check metrics` on a scrape taken under load: {promtool}.

{LOAD_ANALYSIS}
{GENERATORS_NOTE}
Run it: `make test` once (it installs matplotlib for the chart), commit, then
`.venv/bin/python -m benchmarks.load` (each round ramps every profile twice, with the C
extension and with the pure-Python twin, so it takes longer than before; `--profiles`,
`--steps`, `--hold`, `--workers N`, `--runs N`, `--phases N`).
"""


GENERATORS_NOTE = """**The load generators.** The echo agent is a small WebSocket server protocol
that re-encodes only the 36 base64 characters holding the stamps and numbers and answers
everything one read brought in one write (about 48,500 instructions per frame by callgrind,
2.6× fewer than the general-purpose server it replaced). The carrier sends every call's RTP
from one socket, each 1 ms slot's calls in one `sendmmsg` batch (one stamp per batch of
64), and reads what came back every millisecond with `recvmmsg`, each datagram timed by
the kernel: read on every wake-up instead, with the calls' clocks spread, its reader took
about half of a core at 100 calls (51 % in `top`, against 36 % with the timed reads).
`--phases 1` sends every call's packet in one burst per period, as the carrier did before
4f0d809. Between steps the carrier orders the step's latency samples by partial ordering
(`np.partition`): before fcd4ea6 it sorted them in Python, in the event loop that paces
every call, and stalled its own sending for 60–85 ms at the end of each step — a delay
spike in every call's packets whose effect lasted into the next step's window.
"""


LOAD_TWIN_NOTE = """Each round ramps the floor once per
agent format, then every profile twice on the same floor: trunkline with its C extension
(*C*) and with its pure-Python twin (`TRUNKLINE_NO_SPEEDUPS=1`), each run's process
confirmed from its own start-up log. The carrier sends every call's RTP from one socket
in `sendmmsg` batches, each call on its own 20 ms clock: the calls' clocks are spread over
the period in 1 ms slots (`--phases`, 20 by default), as the clocks of a trunk's
independent calls are, and what comes back is read every millisecond with `recvmmsg`, each
datagram timed by the kernel (`SO_TIMESTAMPNS`). The echo agent is a light WebSocket server
that re-encodes only the stamped bytes of each frame (`benchmarks/_rtp_fleet.py`,
`benchmarks/_echo_agent.py`); the floor uses the same generators. """

SHARED_FLOOR_NOTE = """The `-shared` profiles have a floor of their own that relays every
call's RTP through one socket, as trunkline's shared port does (up to 64 datagrams read per
wake-up with `recvmmsg`, a loop iteration's packets written with one `sendmmsg`, each call
told apart by its SSRC): the same sockets as the profile it is compared with. Each step
records the generators' CPU too (carrier and agent, `generators_cpu_percent`), so a step
the floor could not carry says whether the relay's core or the generators' was full. """

LOAD_ANALYSIS = """What limits each profile here, as far as these numbers show it (runs of 2026-12-05
at fcd4ea6, steps of 100 up to 800 calls, judged against 5 ms of added latency p99):

- **μ-law** carried 700 (600–700) calls per core with the C extension, with no loss by
  frame number. Runs 2 and 3 did not stop on trunkline: at 700 and 800 calls the floor
  relay with the same generators missed the objectives too (the carrier and echo agent
  at 82–92 % of their one core), so their ramps end at a limit of the measurement. Run 1
  stopped at 800 on added latency (69 ms → agent): trunkline's core is close to full there.
- **Recorded μ-law (the default)** carried 400 (300–500): the ramps stopped on added
  latency of 5–16 ms p99 with trunkline at 73–89 % of its core (recording's disk and
  speech work run beside the audio); which of them delays the frames there is not yet
  pinned down. **PCM16 16 kHz** carried 600 (500–700); beyond, calls
  were not answered within 10 s and frames were lost: set-ups and transcoding together
  fill the core.
- **The shared RTP port** carried 600 (400–600) recorded and 400 (300–600) μ-law calls:
  its datagrams are read in batches and timed when read, not by the kernel, so a stall
  of the process can still look like network jitter there (not measured apart in this run).
- **Earlier runs were held back by the benchmark itself.** Until fcd4ea6 the carrier
  sorted each step's latency samples in the event loop that paces every call, which
  stalled its sending for 60–85 ms at the end of every step: each call's jitter buffer
  concealed a frame or two, then held the late packets behind them, and since the
  benchmark's tagged frames are never quiet that excess waited out the 10 s shrink
  patience, into the next step's window (+20–40 ms from 500 calls).
- **Pure Python** carried 300 μ-law, 300 recorded and 200 PCM16 calls per core: the
  C extension carries 2.3× (μ-law) to 3× (PCM16) as many.
"""


def restructuring_section(result: dict[str, Any]) -> str:
    """The same-run comparison of trunkline with the code before the call-core restructuring."""
    ratios = "; ".join(
        f"{fmt} {data['cpu_ratio_to_baseline']['median']:.2f}× "
        f"({data['cpu_ratio_to_baseline']['min']:.2f}–{data['cpu_ratio_to_baseline']['max']:.2f}"
        " per round)"
        for fmt, data in result["formats"].items()
        if data.get("cpu_ratio_to_baseline")
    )
    return f"""### Before and after the call-core restructuring

`{result["command"]}` at commit `{result["commit"][:7]}`
(`benchmarks/results/bridge-restructuring.json`): trunkline and trunkline as
committed at `{result["baseline"]}` (before the call core, media session and
storage were restructured) ran alternately, {result["runs"]} rounds of
{result["calls"]} calls × {result["seconds"]:.0f} s, on the same machine at the same
time, without core pinning. CPU per call as a multiple of the baseline's: {ratios}
— the restructuring costs nothing measurable on the frame path. Loss in this run
was counted, not by frame number: 0 for every kind.
"""


def cluster_rows(result: dict[str, Any]) -> str:
    """The scale-out figures of ``benchmarks.cluster`` as a table (1 node, 2 nodes, ratio)."""
    summary = result["summary"]
    rows = []
    for nodes in (1, 2):
        figures = summary[f"{nodes}_nodes"]
        writes = [run[str(nodes)].get("database_per_call") or {} for run in result["runs"]]
        transactions = [w["xact_commit"] for w in writes if w]
        rows.append([
            f"{nodes} node{'s' if nodes > 1 else ''}",
            with_spread(figures["calls_per_second"], 1),
            with_spread(figures["capacity_calls"], 0),
            cpu_cell(figures.get("cpu_during_setup"), figures.get("machine_during_setup")),
            cpu_cell(figures.get("cpu_at_capacity"), figures.get("machine_at_capacity")),
            number(sorted(transactions)[len(transactions) // 2], 1) if transactions else "–",
        ])  # fmt: skip
    scaling = summary["scaling"]
    rows.append([
        "**2 nodes ÷ 1 node**", with_spread(scaling["calls_per_second"]),
        with_spread(scaling["capacity_calls"]), "", "", "",
    ])  # fmt: skip
    return table(
        ["cluster", "set-up calls/s", "calls held", "CPU during set-up", "CPU at calls held",
         "PostgreSQL transactions/call"],
        rows,
    )  # fmt: skip


def cpu_cell(parts: dict[str, float] | None, machine: float | None = None) -> str:
    """Nodes / generators (carrier + agent) / Kamailio + PostgreSQL, then all of them, in % of one
    core; then the whole machine's busy share, in % of all its cores, where measured."""
    if not parts:
        return "–"
    generators = parts.get("carrier", 0.0) + parts.get("agent", 0.0)
    shared = parts.get("kamailio", 0.0) + parts.get("postgres", 0.0)
    nodes = parts.get("nodes", 0.0)
    cell = f"{nodes:.0f} / {generators:.0f} / {shared:.0f} (all {nodes + generators + shared:.0f})"
    return cell if machine is None else f"{cell}; machine {machine:.0f} % busy"


def drops(step: dict[str, Any]) -> list[str]:
    """The caller packets the nodes said they dropped in a step's window, if any."""
    counted = {name: count for name, count in (step.get("node_drops") or {}).items() if count}
    if not counted:
        return []
    said = ", ".join(
        f"{name.replace('_', ' ')} {count:,}" for name, count in sorted(counted.items())
    )
    return [f"the nodes dropped: {said}"]


def cluster_stops(result: dict[str, Any]) -> str:
    """What ended each ramp, run by run (the first objective a step missed)."""
    lines = []
    for nodes in (1, 2):
        stops = []
        for run in result["runs"]:
            figures = run[str(nodes)]
            broken = next((s for s in figures["steps"] if s["broken"]), None)
            stops.append(
                f"{broken['calls']} calls ({'; '.join(broken['broken'] + drops(broken))})"
                if broken
                else "never (the top step held)"
            )
        lines.append(f"- {nodes} node{'s' if nodes > 1 else ''}: " + ", ".join(stops))
    return "Where each run's ramp stopped:\n\n" + "\n".join(lines)


def cluster_setup_limits(result: dict[str, Any]) -> str:
    """What limited each run's set-up test, where the result says."""
    lines = []
    for nodes in (1, 2):
        said = [run[str(nodes)].get("setup_limited_by") for run in result["runs"]]
        if any(said):
            lines.append(f"- {nodes} node{'s' if nodes > 1 else ''}: " + ", ".join(
                limit or "–" for limit in said
            ))  # fmt: skip
    return "\nWhat limited each run's set-up test:\n\n" + "\n".join(lines) + "\n" if lines else ""


def cluster_layout(result: dict[str, Any]) -> str:
    """Where the nodes and the rest ran, and what that means for the ratio."""
    layout = result.get("layout")
    if layout is None:  # results written before layouts were named
        where = (
            f"Nodes ran on core(s) {result.get('node_cores')}; Kamailio, PostgreSQL, the echo"
            f" agent and the carrier on {(result.get('cores') or {}).get('load_generators', 'every core')}."
        )
    else:
        where = f"Layout: {layout['summary']}."
    load = result.get("load_average")
    if load:
        where += (
            f" The machine's 1-minute load average was {load['min']:.1f}–{load['max']:.1f}"
            f" ({result.get('machine', {}).get('cpus')} CPUs) around the measurements."
        )
    quota = (layout or {}).get("node_cpu_percent")
    if quota:
        return (
            f"{where} **Each node ran under a CPU quota of {quota:.0f} % of its core, so that"
            " the nodes, not this machine's two cores, are the limit; per-node figures are"
            " per quota, not per core.**"
        )
    if result.get("nodes_share_a_core"):
        return (
            f"{where} **The nodes shared one core in this run: the ratio shows what a second"
            " node costs, not how far two nodes on their own cores scale.**"
        )
    if result.get("generators_share_node_cores"):
        return (
            f"{where} **The load generators, Kamailio and PostgreSQL had no core of their own:"
            " in the 2-node cluster they compete with node B for its core, so the ratio"
            " understates what a second node on a core of its own adds.**"
        )
    return where


def cluster_verdict(result: dict[str, Any]) -> str:
    """The median ratios against the target, in words (never claiming what the median does not show)."""
    scaling = result["summary"]["scaling"]
    target = scaling["target"]
    figures = [
        (name, scaling[key]["median"])
        for name, key in (("set-up rate", "calls_per_second"), ("calls held", "capacity_calls"))
        if scaling.get(key)
    ]
    said = [
        f"{name} {ratio_text(value, target)}× ({'meets' if value >= target else 'below'} the"
        f" {target}× target)"
        for name, value in figures
    ]
    if not scaling.get("capacity_calls"):
        said.append("calls held not measured (no run's 1-node ramp held a step)")
    return f"Median scaling efficiency (2 nodes ÷ 1 node): {'; '.join(said)}."


def ratio_text(value: float, target: float) -> str:
    """Two decimals, or three where two would round a ratio below the target up to it."""
    return f"{value:.3f}" if value < target <= round(value, 2) else f"{value:.2f}"


def cluster_method(result: dict[str, Any]) -> str:
    settings = result["settings"]
    objectives = result["objectives"]
    hang_up = (
        "each hung up as soon as it is answered (so each call goes\nthrough its whole life)"
        if result.get("setup_hangs_up_on_answer")
        else "all hung up after the last answer (the calls answered so far stay up,\nwith their"
        " media, while the rest are set up)"
    )
    jitter = (
        f" (60 ms and the {objectives['jitter_max_ms']} ms the nodes' caller jitter buffer may"
        " hold)"
        if "jitter_max_ms" in objectives
        else ""
    )
    machine = (
        f" and the machine no more than {objectives['max_machine_busy_percent']:.0f} % busy"
        if "max_machine_busy_percent" in objectives
        else ""
    )
    return f"""Set-up rate: {settings["setup_calls"]} calls with at most {settings["in_flight"]} INVITEs
outstanding, {hang_up}. Calls held: a ramp over
{settings["steps"]}, each step held {settings["hold_seconds"]:.0f} s, within loss ≤
{objectives["max_loss"] * 100:.1f} % (by frame number), round trip p99 ≤
{objectives["max_round_trip_p99_ms"]:.0f} ms{jitter}, every call answered, neither generator
(carrier, agent) above 90 % of a core{machine}. Median of {result["runs_count"]} run(s) (min–max); the
ratio is taken run by run. CPU columns: the nodes together / the generators (carrier +
agent) / Kamailio + PostgreSQL, in % of one core, medians over the runs (set-up: from the
first INVITE to the last answer; calls held: the last step held, or the first step when
none held), then all of them together out of the machine's {100 * (result.get("machine", {}).get("cpus") or 0)} %,
and the whole machine's busy share (every process, the kernel's network work included)."""


def cluster_section(result: dict[str, Any]) -> str:
    return f"""## Scale-out — `python -m benchmarks.cluster`

{provenance(result)} 1 node and 2 nodes alternating.
Kamailio (`deploy/kamailio/kamailio.cfg`) in front of real nodes on 127.0.0.2 and 127.0.0.3
sharing one PostgreSQL; calls recorded (the default). {cluster_layout(result)}
{cluster_method(result)} Target: {result["summary"]["scaling"]["target"]}×.

{cluster_rows(result)}

{cluster_verdict(result)}
{cluster_setup_limits(result)}
{cluster_stops(result)}
"""


SCALING_DOC = DOC.parent / "scaling.md"
SCALING_START = "<!-- benchmarks.cluster: start -->"
SCALING_END = "<!-- benchmarks.cluster: end -->"


def update_scaling(result: dict[str, Any]) -> None:
    """Put the latest ``benchmarks.cluster`` table between the markers of docs/scaling.md."""
    if not SCALING_DOC.exists():
        return
    text = SCALING_DOC.read_text()
    head, start, rest = text.partition(SCALING_START)
    _, end, tail = rest.partition(SCALING_END)
    if not start or not end:
        return
    block = (
        f"{provenance(result)} {cluster_layout(result)}\n\n{cluster_method(result)}\n\n"
        f"{cluster_rows(result)}\n\n{cluster_verdict(result)}\n{cluster_setup_limits(result)}\n"
        f"{cluster_stops(result)}\n"
    )
    SCALING_DOC.write_text(f"{head}{SCALING_START}\n{block}{SCALING_END}{tail}")


def main() -> None:
    sections = [
        """# Performance

Every benchmark prints its figures next to a reference measured **in the same
run** and writes JSON under `benchmarks/results/`; `python -m benchmarks.report`
rewrites this page from those files. Machines are shared and noisy: read the
ratios, not single absolute timings. Each result file records the commit, the
command line and the machine; the media benchmarks (`bridge`, `load`) and
`speech` run at least three times and publish the median (`bridge` and `load`
with its min–max), never the best run,
and refuse to measure code that differs from its commit (`--allow-uncommitted`
measures it anyway and the page then calls the figures provisional).
"""
    ]
    for name, render in (("codecs", codecs_section), ("frame_cost", frame_cost_section),
                         ("api", api_section),
                         ("bridge", bridge_section),
                         ("bridge-restructuring", restructuring_section),
                         ("speech", speech_section),
                         ("load", load_section),
                         ("cluster", cluster_section)):  # fmt: skip
        result = load(name)
        if result is not None:
            sections.append(render(result))
    cluster = load("cluster")
    if cluster is not None:
        update_scaling(cluster)
    DOC.write_text("\n".join(sections))
    print(f"wrote {DOC.relative_to(DOC.parent.parent)}")


if __name__ == "__main__":
    main()
