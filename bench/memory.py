"""Resident memory of the bot process, idle and under load.

DESIGN.md's targets: <= 100 MiB idle and <= 128 MiB under load. `holmbot sandbox` runs in one
process and `holmbot console --config DIR/holmbot.yaml` (the bot, attached to it as to a real
cluster) in another; this reads the console's resident set from /proc: once it has answered its
first command and settled, then at its peak while it works through a load of every command
(health, logs, history and status of every service, rollouts tracked to their end, backups),
and once that work is done.

    python3 -m bench.memory [--speed 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import tempfile
import time
from pathlib import Path

from sandbox.seed import SERVICES

MARKER = "help: health"  # the first line of `help health`'s reply
SETTLE_SECONDS = 3.0
IDLE_TARGET_MIB = 100
LOAD_TARGET_MIB = 128


def _status_kib(pid: int, key: str) -> int:
    """A `VmRSS`-like line of /proc/PID/status, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise KeyError(key)


def _load_script(rounds: int) -> list[str]:
    """What an afternoon of operators asks: reads of every service, rollouts, backups."""
    lines: list[str] = []
    for _ in range(rounds):
        lines.append("/health")
        for seed in SERVICES:
            lines += [
                f"/health {seed.name}",
                f"/logs {seed.name} --tail 500",
                f"/status {seed.name}",
                f"/rollback {seed.name} history",
            ]
    lines += [
        "/deploy nova v2",
        "/deploy pulse v1.3-leak",  # OOM-killed: tracked until the runbook trigger fires
        "/restart gateway",
        "/scale holmos-shell 3",
        "/backup create bench",
        "/backup list",
        "wait",
    ]
    return lines


async def _until_marker(stdout: asyncio.StreamReader) -> None:
    while MARKER not in (line := (await stdout.readline()).decode()):
        if not line:
            raise SystemExit("the console exited early")


async def _send(console: asyncio.subprocess.Process, lines: list[str]) -> None:
    assert console.stdin is not None and console.stdout is not None
    console.stdin.write("".join(f"{line}\n" for line in [*lines, "help health"]).encode())
    await console.stdin.drain()
    await _until_marker(console.stdout)


async def _peak_while(pid: int, work: asyncio.Task[None]) -> int:
    """The highest resident set seen while `work` runs, in KiB (sampled every 50 ms)."""
    peak = 0
    while not work.done():
        peak = max(peak, _status_kib(pid, "VmRSS"))
        await asyncio.sleep(0.05)
    await work
    return peak


async def _bench(args: argparse.Namespace, state: Path) -> None:
    sandbox_log = state / "sandbox.log"
    with sandbox_log.open("w") as errors:
        sandbox = await asyncio.create_subprocess_exec(
            "holmbot", "sandbox", "--state-dir", str(state / "sandbox"), "--speed",
            str(args.speed), stdout=asyncio.subprocess.PIPE, stderr=errors,
        )  # fmt: skip
    assert sandbox.stdout is not None
    try:
        while not (line := await sandbox.stdout.readline()).startswith(b"Stop with"):
            if not line:
                raise SystemExit(f"the sandbox exited early:\n{sandbox_log.read_text()}")
        console = await asyncio.create_subprocess_exec(
            "holmbot", "console", "--config", str(state / "sandbox" / "holmbot.yaml"),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            await _send(console, [])
            await asyncio.sleep(SETTLE_SECONDS)
            idle = _status_kib(console.pid, "VmRSS")
            script = _load_script(args.rounds)
            started = time.perf_counter()
            peak = await _peak_while(console.pid, asyncio.create_task(_send(console, script)))
            took = time.perf_counter() - started
            await asyncio.sleep(SETTLE_SECONDS)
            after = _status_kib(console.pid, "VmRSS")
        finally:
            console.send_signal(signal.SIGTERM)
            await console.wait()
    finally:
        sandbox.send_signal(signal.SIGTERM)
        await sandbox.wait()
    print(f"bot process (holmbot console), {len(script)} commands in {took:.0f} s\n")
    print("| when | resident memory | target |")
    print("|---|---|---|")
    print(f"| idle, after its first command | {idle / 1024:.0f} MiB | <= {IDLE_TARGET_MIB} MiB |")
    print(f"| peak under load | {peak / 1024:.0f} MiB | <= {LOAD_TARGET_MIB} MiB |")
    print(f"| after the load | {after / 1024:.0f} MiB | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", type=float, default=20.0, help="the sandbox's time scale")
    parser.add_argument("--rounds", type=int, default=3, help="reads of every service, rounds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="holmbot-bench-") as state:
        asyncio.run(_bench(args, Path(state)))


if __name__ == "__main__":
    main()
