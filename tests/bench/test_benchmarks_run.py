"""The benchmarks still run end to end and print their tables (figures are not judged here)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 300  # seconds a benchmark may take here, on a loaded machine


async def bench(*args: str) -> str:
    """Run `python -m ARGS` from the project's root; what it printed (it must exit 0)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", *args, cwd=ROOT, stdout=out, stderr=err, start_new_session=True
        )
        try:
            async with asyncio.timeout(LIMIT):
                await process.wait()
        except TimeoutError:  # stop it and all it started, and say what it had printed
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        out.seek(0)
        err.seek(0)
        printed, errors = out.read().decode(), err.read().decode()
    assert process.returncode == 0, f"exit {process.returncode}\n{printed}\n{errors}"
    return printed


async def test_health_overview_benchmark_prints_both_probe_paths() -> None:
    out = await bench(
        "bench.health_overview", "--services", "5", "--hanging", "2", "--timeout", "0.3",
        "--runs", "2",
    )  # fmt: skip
    assert "5 services, 2 hanging, probe timeout 0.30 s, 2 runs" in out
    row = r"\| the {} \| [\d.]+ s \| [\d.]+ s \| [\d.]+ s \| [\d.]+ s \| [\d.]+ x \|"
    assert re.search(row.format("bot's own"), out), out
    assert re.search(row.format("aggregator's"), out), out


async def test_memory_benchmark_prints_idle_load_and_logs_peaks() -> None:
    out = await bench("bench.memory", "--rounds", "0", "--log-reads", "1")
    assert re.search(r"\| idle, after its first command \| \d+ MiB \|", out), out
    assert re.search(r"\| peak under load \| \d+ MiB \|", out), out
    assert "x1 over 10 pods, each pod's log at least 1.00 MiB" in out, out
    assert re.search(r"\| peak over `/logs nova --tail 2000`, 10 pods \| \d+ MiB \|", out), out


async def test_chat_ack_benchmark_prints_both_platforms() -> None:
    out = await bench("bench.chat.ack", "--commands", "5", "--rounds", "1")
    for platform in ("Slack Socket Mode", "Discord"):
        figure = (
            rf"\| slash-command ack, 5 at once, {platform} \| p50 \d+ ms, p99 \d+ ms, max \d+ ms \|"
        )
        assert re.search(figure, out), out


async def test_chat_rollouts_benchmark_prints_latency_bursts_and_calls() -> None:
    out = await bench(
        "bench.chat.rollouts", "--rollouts", "1", "--concurrent", "2", "--speed", "10"
    )  # fmt: skip
    latency = (
        r"\| Deployment status change to the chat message showing it \| p50 \d+ ms, p95 \d+ ms"
    )
    assert re.search(latency, out), out
    for platform in ("slack", "discord"):
        burst = rf"\| 2 rollouts at once \(1 from {platform}\), 20% of edits answered 429 \|"
        assert re.search(burst + r" at most \d+ edit\(s\) .* 0 final states lost \|", out), out
        assert f"chat API calls of one rollout from {platform}:" in out
    assert re.search(r"^\s+\d+\s+Slack chat\.update$", out, flags=re.MULTILINE), out
    assert re.search(r"^\s+\d+\s+Discord PATCH /channels/", out, flags=re.MULTILINE), out


async def test_chat_memory_benchmark_prints_start_idle_and_peaks() -> None:
    out = await bench(
        "bench.chat.memory", "--starts", "1", "--concurrent", "2", "--log-reads", "1"
    )  # fmt: skip
    assert re.search(r"\| start to /ready, 1 starts \| p50 [\d.]+ s, max [\d.]+ s \|", out), out
    assert re.search(r"\| resident memory idle after start \| \d+ MiB \|", out), out
    assert re.search(r"\| peak under 50 reads at once per platform and 2 rollouts", out), out
    assert re.search(r"from Slack and Discord, 10 pods \| \d+ MiB \|", out), out
