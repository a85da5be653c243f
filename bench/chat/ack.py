"""Slash-command ack latency: 50 commands at once, from Slack (Socket Mode) and from Discord
(interactions), to `holmbot run` with both adapters connected.

Slack: from the local Slack sending each `slash_commands` envelope to the envelope's ack
arriving back. Discord: from the local Discord creating each interaction (just before its
INTERACTION_CREATE goes out) to the interaction's callback arriving: the answer, or a
deferral for one that takes longer. The commands are reads spread over the services
(`/health S`, `/logs S --tail 20`, `/rollback S history`), all sent at once per platform.

    python3 -m bench.chat.ack [--commands 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.chat.figures import machine, ms, percentile, row
from bench.chat.rig import DISCORD_CHANNEL, DISCORD_OPERATOR, SLACK_CHANNEL, Rig, chat_rig
from sandbox.seed import SERVICES
from tests.fakes.discord import Interaction

TARGET_P99 = 0.050
ANSWER_TIMEOUT = 30.0
SPEED = 20.0


@dataclass(frozen=True)
class Read:
    """One read command, as each platform sends it."""

    command: str  # the slash command's name
    service: str

    @property
    def slack_text(self) -> str:
        return {"health": "", "logs": " --tail 20", "rollback": " history"}[self.command]

    @property
    def discord_options(self) -> dict[str, object]:
        extra = {"health": {}, "logs": {"tail": 20}, "rollback": {"history": True}}
        return {"service": self.service, **extra[self.command]}


def reads(count: int) -> list[Read]:
    """`count` reads, cycling through the commands and the services."""
    kinds = ("health", "logs", "rollback")
    return [Read(kinds[n % 3], SERVICES[n % len(SERVICES)].name) for n in range(count)]


async def slack_acks(rig: Rig, count: int) -> list[float]:
    """Send `count` slash commands at once; each one's seconds from sent to acked."""

    async def one(read: Read) -> float:
        sent = time.monotonic()
        envelope = await rig.slack.command(
            f"/{read.command}",
            f"{read.service}{read.slack_text}",
            user="UOPS",
            channel=SLACK_CHANNEL,
        )
        await rig.slack.ack_of(envelope, timeout=ANSWER_TIMEOUT)
        return time.monotonic() - sent

    return list(await asyncio.gather(*(one(read) for read in reads(count))))


async def discord_acks(rig: Rig, count: int) -> list[float]:
    """Create `count` interactions at once; each one's seconds from created to answered."""

    async def one(read: Read) -> Interaction:
        return await rig.discord.slash(
            DISCORD_OPERATOR, DISCORD_CHANNEL, read.command, **read.discord_options
        )

    interactions = await asyncio.gather(*(one(read) for read in reads(count)))
    deadline = time.monotonic() + ANSWER_TIMEOUT
    while any(i.answered_at is None for i in interactions):
        if time.monotonic() > deadline:
            raise SystemExit("some interactions were never answered")
        await asyncio.sleep(0.05)
    late = [i for i in interactions if i.kind not in (4, 5)]
    if late:
        raise SystemExit(f"{len(late)} interactions answered with types {[i.kind for i in late]}")
    return [i.answered_at - i.created for i in interactions if i.answered_at is not None]


async def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + ANSWER_TIMEOUT
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} within {ANSWER_TIMEOUT:g} s")
        await asyncio.sleep(0.05)


@dataclass
class AckFigures:
    slack: list[float]
    discord: list[float]
    deferred: int

    def rows(self, count: int) -> list[str]:
        return [
            row(
                f"slash-command ack, {count} at once, {name}",
                f"p50 {ms(percentile(values, 0.5))}, p99 {ms(percentile(values, 0.99))}, "
                f"max {ms(max(values))}",
                f"p99 <= {ms(TARGET_P99)}",
            )
            for name, values in (("Slack Socket Mode", self.slack), ("Discord", self.discord))
        ]


async def measure(rig: Rig, count: int, rounds: int) -> AckFigures:
    """`rounds` rounds of `count` commands at once on each platform, each round sent once
    the bot has answered the one before (every Slack reply posted, every Discord answer
    filled in), so each measures a burst on a bot with nothing else to do."""
    figures = AckFigures([], [], 0)
    for _ in range(rounds):
        posted = len(rig.slack.posted())
        figures.slack += await slack_acks(rig, count)
        want = posted + count
        await until(lambda w=want: len(rig.slack.posted()) >= w, "Slack answered not all")
        before = set(rig.discord.interactions)
        figures.discord += await discord_acks(rig, count)
        ours = [i for n, i in rig.discord.interactions.items() if n not in before]
        figures.deferred += sum(1 for i in ours if i.kind == 5)
        await until(
            lambda o=ours: all((m := rig.discord.answer_message(i)) and m.embeds for i in o),
            "Discord answers were not all filled in",
        )
    return figures


async def _bench(args: argparse.Namespace, state: Path) -> None:
    async with chat_rig(state, SPEED) as world, world.bot():
        figures = await measure(world, args.commands, args.rounds)
    print(f"holmbot run, Slack and Discord connected; {machine()}")
    print(
        f"{args.rounds} rounds of {args.commands} commands at once per platform; "
        f"{figures.deferred} Discord interactions deferred\n"
    )
    print(row("figure", "measured", "target"))
    print(row("---", "---", "---"))
    for line in figures.rows(args.commands):
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=50, help="commands sent at once")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per platform")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="holmbot-bench-") as state:
        asyncio.run(_bench(args, Path(state)))


if __name__ == "__main__":
    main()
