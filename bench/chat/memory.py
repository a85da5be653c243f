"""`holmbot run` with both adapters: start to /ready, resident memory idle after start, its
peak under the chat loads, and its peak over `/logs` of 10 pods with 1 MiB of logs each.

The bot is started `--starts` times (each one timed from exec to the first 200 from /ready);
the last one stays up: its resident set once settled, then its high-water mark (VmHWM, reset
through clear_refs before each case) over the ack load of bench.chat.ack (50 reads at once
per platform) and 20 rollouts at once with 429s (bench.chat.rollouts), then over
`/logs nova --tail 2000` from Slack and from Discord (long output goes up as a file).

    python3 -m bench.chat.memory [--starts 3] [--concurrent 20] [--log-reads 2]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.biglogs import PODS, READ, BigLogs
from bench.chat import ack, rollouts
from bench.chat.figures import machine, percentile, row
from bench.chat.rig import (
    DISCORD_CHANNEL,
    DISCORD_OPERATOR,
    SLACK_CHANNEL,
    BotProcess,
    Rig,
    chat_rig,
)
from bench.proc import IMAGE_ENV, reset_peak, status_kib

SPEED = 20.0
SETTLE_SECONDS = 3.0
READY_TARGET = 3.0
IDLE_TARGET_MIB = 110
PEAK_TARGET_MIB = 128
REPLY_TIMEOUT = 60.0


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


async def logs_from_slack(rig: Rig) -> None:
    """`/logs nova --tail 2000` from Slack; returns once its file is uploaded."""
    before = len(rig.slack.completed_uploads())
    command, _, text = READ.partition(" ")
    await rig.slack.command(command, text, user="UOPS", channel=SLACK_CHANNEL)
    deadline = time.monotonic() + REPLY_TIMEOUT
    while len(rig.slack.completed_uploads()) == before:
        if time.monotonic() > deadline:
            raise SystemExit("Slack never got the log file")
        await asyncio.sleep(0.1)


async def logs_from_discord(rig: Rig) -> None:
    """The same read as a Discord slash command; returns once its answer carries the file."""
    _, service, _, tail = READ.split()
    interaction = await rig.discord.slash(
        DISCORD_OPERATOR, DISCORD_CHANNEL, "logs", service=service, tail=int(tail)
    )
    deadline = time.monotonic() + REPLY_TIMEOUT
    while not ((answer := rig.discord.answer_message(interaction)) and answer.files):
        if time.monotonic() > deadline:
            raise SystemExit("Discord never got the log file")
        await asyncio.sleep(0.1)


@dataclass
class MemoryFigures:
    ready_after: list[float]
    idle: int
    load_peak: int
    after_loads: int
    logs_peak: int
    log_sizes: list[int]


async def loads_peak(rig: Rig, bot: BotProcess, concurrent: int) -> int:
    """The bot's peak (KiB) over the ack load and `concurrent` rollouts at once."""
    reset_peak(bot.pid)
    await ack.measure(rig, 50, 1)
    cluster = rollouts.Cluster(rig)
    try:
        services = await cluster.add(concurrent)
        await rollouts.at_once(rig, services, 0.2)
    finally:
        cluster.close()
    return status_kib(bot.pid, "VmHWM")


async def logs_peak(rig: Rig, bot: BotProcess, reads: int) -> tuple[int, list[int]]:
    """The bot's peak (KiB) over `reads` rounds of the big `/logs` from both platforms."""
    async with BigLogs(rig.sandbox) as logs:
        await asyncio.sleep(SETTLE_SECONDS)
        reset_peak(bot.pid)
        sizes: list[int] = []
        for _ in range(reads):  # the pods keep logging: fill again before each read
            sizes = await logs.fill()
            await logs_from_slack(rig)
            sizes = await logs.fill()
            await logs_from_discord(rig)
        return status_kib(bot.pid, "VmHWM"), sizes


async def measure(rig: Rig, starts: int, concurrent: int, reads: int) -> MemoryFigures:
    ready_after = []
    for _ in range(starts - 1):
        async with rig.bot() as bot:
            ready_after.append(bot.ready_after)
    async with rig.bot() as bot:
        ready_after.append(bot.ready_after)
        await asyncio.sleep(SETTLE_SECONDS)
        idle = status_kib(bot.pid, "VmRSS")
        load = await loads_peak(rig, bot, concurrent)
        await asyncio.sleep(SETTLE_SECONDS)
        after = status_kib(bot.pid, "VmRSS")
        peak, sizes = await logs_peak(rig, bot, reads)
    return MemoryFigures(ready_after, idle, load, after, peak, sizes)


def report(figures: MemoryFigures, concurrent: int) -> list[str]:
    ready = figures.ready_after
    return [
        row("figure", "measured", "target"),
        row("---", "---", "---"),
        row(
            f"start to /ready, {len(ready)} starts",
            f"p50 {percentile(ready, 0.5):.2f} s, max {max(ready):.2f} s",
            f"<= {READY_TARGET:g} s",
        ),
        row("resident memory idle after start", mib(figures.idle), f"<= {IDLE_TARGET_MIB} MiB"),
        row(
            f"peak under 50 reads at once per platform and {concurrent} rollouts at once",
            mib(figures.load_peak),
            f"<= {PEAK_TARGET_MIB} MiB",
        ),
        row("resident memory settled after those loads", mib(figures.after_loads), ""),
        row(
            f"then its peak over `{READ}` from Slack and Discord, {PODS} pods",
            mib(figures.logs_peak),
            f"<= {PEAK_TARGET_MIB} MiB",
        ),
    ]


async def _bench(args: argparse.Namespace, state: Path) -> None:
    async with chat_rig(state, SPEED) as world:
        figures = await measure(world, args.starts, args.concurrent, args.log_reads)
    malloc = " ".join(f"{name}={value}" for name, value in IMAGE_ENV.items())
    print(f"holmbot run, Slack and Discord connected; {machine()}; {malloc}")
    smallest = min(figures.log_sizes) / 2**20
    print(f"{READ} x{args.log_reads} per platform, each pod's log at least {smallest:.2f} MiB\n")
    print("\n".join(report(figures, args.concurrent)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3, help="starts timed to /ready")
    parser.add_argument("--concurrent", type=int, default=20, help="rollouts at once")
    parser.add_argument("--log-reads", type=int, default=2, help="big /logs per platform")
    args = parser.parse_args()
    if args.starts < 1 or args.log_reads < 1:
        parser.error("--starts and --log-reads must be at least 1")
    with tempfile.TemporaryDirectory(prefix="holmbot-bench-") as state:
        asyncio.run(_bench(args, Path(state)))


if __name__ == "__main__":
    main()
