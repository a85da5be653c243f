"""The benchmarks still run end to end and print their tables (figures are not judged here)."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


async def bench(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(120):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_health_overview_benchmark_prints_both_probe_paths() -> None:
    out = await bench(
        "bench.health_overview", "--services", "5", "--hanging", "2", "--timeout", "0.3",
        "--runs", "2",
    )  # fmt: skip
    assert "5 services, 2 hanging, probe timeout 0.30 s, 2 runs" in out
    row = r"\| the {} \| [\d.]+ s \| [\d.]+ s \| [\d.]+ s \| [\d.]+ s \| [\d.]+ x \|"
    assert re.search(row.format("bot's own"), out), out
    assert re.search(row.format("aggregator's"), out), out


async def test_memory_benchmark_prints_idle_and_peak() -> None:
    out = await bench("bench.memory", "--rounds", "0")
    assert re.search(r"\| idle, after its first command \| \d+ MiB \|", out), out
    assert re.search(r"\| peak under load \| \d+ MiB \|", out), out
