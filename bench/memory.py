"""Resident memory of the bot process, idle, under load and reading large logs.

Targets: <= 100 MiB idle after the first command, and a peak of <= 128 MiB under load and
while `/logs` reads many pods with large logs. The sandbox runs in this process and
`holmbot console --config SANDBOX/holmbot.yaml` (the bot, attached to it as to a real cluster)
in another; this reads the console's memory from /proc: its resident set once it has answered
its first command and settled, its high-water mark (VmHWM, reset through clear_refs before
each case) while it works through a load of every command (health, logs, history and status
of every service, rollouts tracked to their end, backups), its resident set once that is done,
and its high-water mark while it runs `/logs nova --tail 2000` over 10 pods whose current
containers each hold 1 MiB of logs (the kubelet keeps 2000 lines, so lines of 524 bytes).

    python3 -m bench.memory [--speed 20] [--rounds 3] [--log-reads 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import tempfile
import time
from pathlib import Path

from bench.biglogs import READ, BigLogs
from bench.proc import IMAGE_ENV, reset_peak, status_kib
from sandbox.cluster import Sandbox
from sandbox.seed import SERVICES

MARKER = "help: health"  # the first line of `help health`'s reply
SETTLE_SECONDS = 3.0
IDLE_TARGET_MIB = 100
LOAD_TARGET_MIB = 128


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
    """Type `lines` into the console and wait until it has answered all of them."""
    assert console.stdin is not None and console.stdout is not None
    console.stdin.write("".join(f"{line}\n" for line in [*lines, "help health"]).encode())
    await console.stdin.drain()
    await _until_marker(console.stdout)


async def _logs_case(
    sandbox: Sandbox, console: asyncio.subprocess.Process, reads: int
) -> tuple[int, list[int]]:
    """Scale the logs' service out, fill its logs, and the console's peak (KiB) over the
    reads; also the pods' log sizes just before the last read."""
    async with BigLogs(sandbox) as logs:
        await asyncio.sleep(SETTLE_SECONDS)
        reset_peak(console.pid)
        sizes: list[int] = []
        for _ in range(reads):  # the pods keep logging: fill again before each read
            sizes = await logs.fill()
            await _send(console, [READ])
        return status_kib(console.pid, "VmHWM"), sizes


async def _bench(args: argparse.Namespace, state: Path) -> None:
    async with Sandbox(state / "sandbox", args.speed) as sandbox:
        await sandbox.wait_started()
        console = await asyncio.create_subprocess_exec(
            "holmbot", "console", "--config", str(sandbox.bot_config_path),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env={**os.environ, **IMAGE_ENV},
        )  # fmt: skip
        try:
            await _send(console, [])
            await asyncio.sleep(SETTLE_SECONDS)
            idle = status_kib(console.pid, "VmRSS")
            script = _load_script(args.rounds)
            reset_peak(console.pid)
            started = time.perf_counter()
            await _send(console, script)
            took = time.perf_counter() - started
            peak = status_kib(console.pid, "VmHWM")
            await asyncio.sleep(SETTLE_SECONDS)
            after = status_kib(console.pid, "VmRSS")
            logs_peak, sizes = await _logs_case(sandbox, console, args.log_reads)
        finally:
            console.send_signal(signal.SIGTERM)
            await console.wait()
    print(f"bot process (holmbot console), {len(script)} commands in {took:.0f} s;")
    print(
        f"then {READ} x{args.log_reads} over {len(sizes)} pods, "
        f"each pod's log at least {min(sizes) / 2**20:.2f} MiB\n"
    )
    print("| when | resident memory | target |")
    print("|---|---|---|")
    print(f"| idle, after its first command | {idle / 1024:.0f} MiB | <= {IDLE_TARGET_MIB} MiB |")
    print(f"| peak under load | {peak / 1024:.0f} MiB | <= {LOAD_TARGET_MIB} MiB |")
    print(f"| after the load | {after / 1024:.0f} MiB | |")
    logs_row = f"| peak over `{READ}`, {len(sizes)} pods | {logs_peak / 1024:.0f} MiB |"
    print(f"{logs_row} <= {LOAD_TARGET_MIB} MiB |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", type=float, default=20.0, help="the sandbox's time scale")
    parser.add_argument("--rounds", type=int, default=3, help="reads of every service, rounds")
    parser.add_argument("--log-reads", type=int, default=3, help="/logs over the 10 pods, times")
    args = parser.parse_args()
    if args.log_reads < 1:
        parser.error("--log-reads must be at least 1")
    with tempfile.TemporaryDirectory(prefix="holmbot-bench-") as state:
        asyncio.run(_bench(args, Path(state)))


if __name__ == "__main__":
    main()
