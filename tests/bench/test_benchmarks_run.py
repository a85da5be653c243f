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
