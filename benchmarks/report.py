"""Write docs/performance.md from the result files under benchmarks/results/.

    python -m benchmarks.report

Run it after any benchmark so the document shows the figures on disk.
"""

from __future__ import annotations

import json
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
  attenuation: 4–7× the cost of `ratecv`'s unfiltered interpolation, and
  about 10–20 µs per frame — about 0.1 % of a core per PCM16 call for both
  directions. (libsoxr was about 3.5 µs per frame but held back 26–66 ms.)
- The `*_into` and DTMF rows are slower than their references per call (numpy
  call overhead; a validated object per event); neither is per-frame work.
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


def bridge_section(result: dict[str, Any]) -> str:
    rows = []
    for agent_audio, data in result["formats"].items():
        for run in ("trunkline", "floor"):
            figures = data[run]
            to_agent = figures.get("latency_to_agent_ms") or {}
            to_carrier = figures.get("latency_to_carrier_ms") or {}
            jitter = figures.get("pacing_jitter_ms") or {}
            rows.append(
                [
                    agent_audio,
                    run,
                    number(figures["cpu_percent_per_call"], 3),
                    str(figures["frames_lost"]),
                    f"{number(to_agent.get('p50'))} / {number(to_agent.get('p99'))}",
                    f"{number(to_carrier.get('p50'))} / {number(to_carrier.get('p99'))}",
                    f"{number(jitter.get('p50'))} / {number(jitter.get('p99'))}",
                ]
            )
    ratios = ", ".join(
        f"{fmt}: {number(data['cpu_ratio_to_floor'])}×" for fmt, data in result["formats"].items()
    )
    return f"""## Media bridge — `python -m benchmarks.bridge`

{result["calls"]} concurrent calls for {result["seconds"]:.0f} s per agent format
({machine(result)}): a real `trunkline serve`, an echo agent and a SIP/RTP carrier,
each in its own process. The floor is the same sockets and agent connections
relaying each packet at once with no gateway logic. CPU is per call, in percent
of one core; latencies are one way, in ms (p50 / p99), from stamps carried in
μ-law payloads (PCM formats transcode them away). trunkline's →carrier figure
includes waiting for the call's clock slot (at most 5 ms at a talk-spurt start)
and its pacing; the floor forwards at once. All processes share the machine's
cores, so absolute latencies include the load generator's own delays. Call
recording is on in the trunkline runs (the default).

{table(["format", "run", "CPU %/call", "lost", "→agent ms", "→carrier ms", "jitter ms"], rows)}

trunkline's CPU per call as a multiple of the floor's — {ratios}.
Target for μ-law pass-through: ≤ {result["target_cpu_percent_per_call"]} % of a core per call.
"""


def speech_section(result: dict[str, Any]) -> str:
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


def load_section(result: dict[str, Any]) -> str:
    m = result.get("machine", {})
    rows = []
    for name, profile in result["profiles"].items():
        steps = profile["trunkline"]
        good = [x for x in steps if not x["broken"]]
        at = good[-1] if good else steps[0]
        added = at.get("added_latency_p99_ms", {})
        per_core = profile.get("calls_per_core_from_cpu")
        limit = "; ".join(profile["limited_by"] or []) or "not reached"
        rows.append([
            name, str(profile["capacity_calls"]), str(profile.get("target_calls") or "–"),
            number(per_core, 0), number(at["cpu_percent_per_call"]),
            number(at.get("cpu_ratio_to_floor")), number(at["memory_kb_per_call"], 0),
            f"{number(added.get('latency_to_agent_ms'), 1)} / "
            f"{number(added.get('latency_to_carrier_ms'), 1)}",
            number(at["setup_ms"]["p99"], 0), limit,
        ])  # fmt: skip
    checks = {n: p.get("promtool_check_under_load") for n, p in result["profiles"].items()}
    promtool = "passes" if all(c == "ok" for c in checks.values()) else f"{checks}"
    return f"""## Whole system — `python -m benchmarks.load`

Measured {result["measured_at"][:10]} on {m.get("cpus")} CPUs ({m.get("cpu_model", "?")}),
{m.get("implementation")} {m.get("python")}, {result["workers"]} trunkline process(es), each
step held {number(result["hold_seconds"], 0)} s. trunkline, the echo agent and the SIP/RTP
carrier run as separate processes on the same machine, all traffic on loopback; callers
send synthesized speech. A step breaks the objective when loss > 0.1 %, trunkline adds
more than 20 ms to latency p99 either way (its p99 minus the bare relay's at the same call
count), or a call fails to set up; capacity is the last step before. "Calls per core"
divides one core by the CPU per call measured at that step.

![CPU per call and latency p99 against concurrent calls](../benchmarks/results/load.png)

{
        table(
            [
                "profile",
                "capacity (calls)",
                "target",
                "calls per core (from CPU)",
                "CPU %/call",
                "× floor",
                "KB/call",
                "added p99 → agent / → carrier (ms)",
                "set-up p99 (ms)",
                "what stopped the ramp",
            ],
            rows,
        )
    }

`promtool check metrics` on a scrape taken under load: {promtool}.

What limits each profile here:

- **The machine.** Two cores carry trunkline *and* the load generators (an agent
  decoding and re-encoding every frame, a carrier sending and timing every packet).
  Past about 150 calls the bare relay itself misses the latency objective, so steps
  beyond that measure the generators, not trunkline; "calls per core" is the figure
  that carries over to a machine where trunkline has its cores to itself.
- **μ-law pass-through and recording**: a py-spy profile of `trunkline serve` under
  100 μ-law calls with recording (2026-11-25, 1,014 samples) puts about a third of
  the process in the event loop's own C code (epoll and socket I/O), 10 % in
  `sendto` for RTP and 6 % in WebSocket writes — one system call per packet or frame
  each way — 18 % in the RTP receive path (parse, filter, hand to the agent) and 20 %
  in the media clock's slots (playout, RTP build and send, the recording's slot).
  The recording writer spent 9 % of samples syncing each call's file to disk every
  second; it now hands blocks to the kernel without a sync (a killed process still
  loses at most a second) and syncs once at hang-up.
- **PCM16 16 kHz**: resampling both ways (9–19 µs per frame, `benchmarks.codecs`)
  and twice the base64/JSON bytes per frame.
- **Transcription**: Whisper's CPU time per second of speech (real-time factor
  about 0.2 on one thread, `benchmarks.speech`); on two shared cores a handful of
  calls fill a core. Give it more `TRUNKLINE_TRANSCRIPTION_WORKERS` on more cores, or
  an HTTP engine.

Run it: `make test` once (it installs matplotlib for the chart), then
`.venv/bin/python -m benchmarks.load` (about 5 minutes; `--profiles`, `--steps`,
`--hold`, `--workers N`).
"""


def main() -> None:
    sections = [
        """# Performance

Every benchmark prints its figures next to a reference measured **in the same
run** and writes JSON under `benchmarks/results/`; `python -m benchmarks.report`
rewrites this page from those files. Machines are shared and noisy: read the
ratios, not single absolute timings.
"""
    ]
    for name, render in (("codecs", codecs_section), ("api", api_section),
                         ("bridge", bridge_section), ("speech", speech_section),
                         ("load", load_section)):  # fmt: skip
        result = load(name)
        if result is not None:
            sections.append(render(result))
    DOC.write_text("\n".join(sections))
    print(f"wrote {DOC.relative_to(DOC.parent.parent)}")


if __name__ == "__main__":
    main()
