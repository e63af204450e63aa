"""``trunkline call`` against trunkline itself, with the example agents as the agents."""

from __future__ import annotations

import asyncio
import sys
import wave
from pathlib import Path

import numpy as np
import soundfile

from tests.example_agents import example_agent
from tests.gateway.conftest import Trunkline
from trunkline.testcall.audio import FRAME_BYTES
from trunkline.testcall.caller import CallOptions, place_call

ROOT = Path(__file__).resolve().parents[2]


async def trunkline_call(*args: str, cwd: Path) -> tuple[int, str]:
    """Run the ``trunkline call`` command in its own process; (exit code, stdout + stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "trunkline",
        "call",
        *args,
        cwd=cwd,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, output.decode()


def write_tone(path: Path, hz: float, seconds: float, rate: int = 16000) -> None:
    samples = 8000 * np.sin(2 * np.pi * hz * np.arange(int(rate * seconds)) / rate)
    soundfile.write(path, samples.astype("<i2"), rate, subtype="PCM_16")


def tone_frames(path: Path, hz: float) -> int:
    """How many 20 ms frames of the recording are mostly a ``hz`` tone."""
    with wave.open(str(path)) as recording:
        samples = np.frombuffer(recording.readframes(recording.getnframes()), "<i2")
    probe = np.exp(-2j * np.pi * hz * np.arange(FRAME_BYTES) / 8000)
    found = 0
    for start in range(0, samples.size - FRAME_BYTES + 1, FRAME_BYTES):
        frame = samples[start : start + FRAME_BYTES].astype(np.float64)
        energy = float(np.dot(frame, frame))
        if (
            energy > FRAME_BYTES * 1000**2
            and 2 * abs(np.dot(frame, probe)) ** 2 / (FRAME_BYTES * energy) > 0.8
        ):
            found += 1
    return found


async def test_the_command_calls_the_echo_example_and_records_the_echo(
    trunkline: Trunkline, tmp_path: Path
) -> None:
    played = tmp_path / "tone.wav"
    write_tone(played, 500, 1.0)
    recording = tmp_path / "out.wav"
    async with example_agent("echo_agent") as agent:
        number = await trunkline.number("auto_accept", agent.url)
        code, output = await trunkline_call(
            number.number,
            "--sip-host", "127.0.0.1",
            "--sip-port", str(trunkline.sip_port),
            "--play", str(played),
            "--record", str(recording),
            "--dtmf", "12",
            cwd=tmp_path,
        )  # fmt: skip
        assert code == 0, output
        await agent.wait_for_line("caller pressed 2")
    lines = output.splitlines()
    assert lines[0] == "answered: yes"
    assert "hung up by: caller after" in output
    round_trip = next(line for line in lines if line.startswith("round trip: "))
    milliseconds = float(round_trip.split()[2])
    assert 0 <= milliseconds < 1000, round_trip
    assert "frames sent:" in output and "16 DTMF event packets" in output
    # The played second of 500 Hz came back through trunkline and the agent.
    assert tone_frames(recording, 500) >= 45
    assert f"recording: {recording}" in output
    calls = await trunkline.services.repository.list_calls(number.organization_id)
    assert [c.status for c in calls] == ["completed"]


async def test_an_agent_hang_up_is_reported_as_trunkline_hanging_up(
    trunkline: Trunkline,
) -> None:
    async with example_agent("echo_agent") as agent:  # its # key ends the call
        number = await trunkline.number("auto_accept", agent.url)
        summary = await place_call(
            CallOptions(number.number, "127.0.0.1", trunkline.sip_port, dtmf="#", seconds=10)
        )
    assert summary.answered and summary.hung_up_by == "trunkline"
    assert summary.seconds < 5
    assert 6 <= summary.counts.dtmf_packets_sent <= 8  # the BYE may come before the last end
    assert summary.round_trip_ms is not None


async def test_an_unknown_number_is_not_answered_and_the_command_exits_1(
    trunkline: Trunkline, tmp_path: Path
) -> None:
    code, output = await trunkline_call(
        "+15550100999", "--sip-port", str(trunkline.sip_port), "--sip-host", "127.0.0.1",
        cwd=tmp_path,
    )  # fmt: skip
    assert code == 1
    assert output.splitlines()[0] == "answered: no (404 Not Found)"


async def test_bad_options_are_clear_errors(trunkline: Trunkline, tmp_path: Path) -> None:
    code, output = await trunkline_call(
        "+15550100001", "--play", str(tmp_path / "missing.wav"), cwd=tmp_path
    )
    assert code == 2 and "trunkline call: cannot read" in output
    code, output = await trunkline_call("+15550100001", "--dtmf", "9x", cwd=tmp_path)
    assert code == 2 and "not a DTMF key: 'x'" in output
