"""What every chat benchmark runs: the sandbox, the local Slack and Discord the tests use, and
`holmbot run` with both adapters on them, as its own process.

The sandbox and both chat servers run in the benchmark's process (they record when each call
arrived); the bot runs as the image runs it (`MALLOC_ARENA_MAX=1`), configured as an operator
would (a YAML file, tokens in the environment), with every member of the ops channels allowed
to deploy and no approvals, so what is measured is the bot's own path.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.proc import IMAGE_ENV
from sandbox.cluster import Sandbox
from tests.fakes import discord as fake_discord
from tests.fakes import slack as fake_slack
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import FakeSlack

SLACK_CHANNEL = "C0OPS"
DISCORD_CHANNEL = 940000000000000001
DISCORD_OPERATOR = 950000000000000001
READY_POLL = 0.01  # seconds between /ready asks while the bot starts
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0

# Discord's documented per-channel budget for message edits and posts: 5 per 5 s.
DISCORD_LIMIT, DISCORD_WINDOW = 5, 5.0


def bot_config(sandbox: Sandbox, slack: FakeSlack, discord: FakeDiscord, state: Path) -> Path:
    """The sandbox's `holmbot.yaml` with both chat apps on the local servers, everyone in
    the ops channels a deployer, no protected services; written next to the bot's state."""
    config: dict[str, Any] = yaml.safe_load(sandbox.bot_config_path.read_text())
    config.update(
        state_dir=str(state / "bot"),
        protected_services=[],
        rollout={"verify_seconds": 0},
        access={
            "roles": {"deployer": {"users": ["slack:*", "discord:*"]}},
            "channels": {"slack": [SLACK_CHANNEL], "discord": [str(DISCORD_CHANNEL)]},
        },
        slack={"api_url": slack.api_url},
        discord={
            "guild_id": fake_discord.GUILD_ID,
            "api_url": discord.api_url,
            "gateway_url": discord.gateway_url,
        },
        probes={"host": "127.0.0.1", "port": 0},
    )
    path = state / "holmbot.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class BotProcess:
    """A running `holmbot run`: its pid, its probes' port, and how long it took to be ready."""

    proc: asyncio.subprocess.Process
    port: int
    ready_after: float  # seconds from the exec to the first 200 from /ready
    lines: list[str]

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def metrics(self) -> str:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"http://127.0.0.1:{self.port}/metrics")).text

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT)
        if code != 0:
            raise SystemExit(f"holmbot run exited {code}:\n" + "\n".join(self.lines[-20:]))


async def _read_lines(stream: asyncio.StreamReader, into: list[str]) -> None:
    async for raw in stream:
        into.append(raw.decode(errors="replace").rstrip("\n"))


def _probes_port(lines: list[str]) -> int | None:
    for line in lines:
        if line.startswith("{"):
            message = json.loads(line).get("message", "")
            if message.startswith("probes listening on port "):
                return int(message.rsplit(" ", 1)[1])
    return None


async def start_bot(config: Path) -> BotProcess:
    """Exec `holmbot run --config CONFIG` and return once its /ready answers 200."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOLMBOT_")}
    env |= IMAGE_ENV | {
        "HOLMBOT_SLACK__BOT_TOKEN": fake_slack.BOT_TOKEN,
        "HOLMBOT_SLACK__APP_TOKEN": fake_slack.APP_TOKEN,
        "HOLMBOT_DISCORD__TOKEN": fake_discord.TOKEN,
    }
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "run", "--config", str(config),
        env=env, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    lines: list[str] = []
    reader = asyncio.create_task(_read_lines(proc.stderr, lines))
    async with httpx.AsyncClient() as client:
        while True:
            if proc.returncode is not None or time.perf_counter() - started > START_TIMEOUT:
                reader.cancel()
                raise SystemExit("holmbot run did not get ready:\n" + "\n".join(lines[-20:]))
            port = _probes_port(lines)
            if port is not None:
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/ready")).status_code == 200:
                        return BotProcess(proc, port, time.perf_counter() - started, lines)
                except httpx.TransportError:
                    pass
            await asyncio.sleep(READY_POLL)


@dataclass
class Rig:
    """The sandbox, both chat servers, and where the bot's config and state go."""

    sandbox: Sandbox
    slack: FakeSlack
    discord: FakeDiscord
    config: Path

    @asynccontextmanager
    async def bot(self) -> AsyncIterator[BotProcess]:
        """`holmbot run` started and ready; stopped with SIGTERM after."""
        bot = await start_bot(self.config)
        try:
            yield bot
        finally:
            if bot.proc.returncode is None:
                await bot.stop()


@asynccontextmanager
async def chat_rig(state: Path, speed: float) -> AsyncIterator[Rig]:
    """Everything started, in `state`; all stopped after."""
    async with Sandbox(state / "sandbox", speed) as sandbox:
        await sandbox.wait_started()
        slack = await FakeSlack().start()
        discord = await FakeDiscord(limit=DISCORD_LIMIT, window=DISCORD_WINDOW).start()
        try:
            discord.add_channel(DISCORD_CHANNEL, "ops")
            discord.add_member(DISCORD_OPERATOR, "operator")
            yield Rig(sandbox, slack, discord, bot_config(sandbox, slack, discord, state))
        finally:
            await discord.stop()
            await slack.stop()
