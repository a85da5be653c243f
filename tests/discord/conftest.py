"""Fixtures for the Discord suite: a local Discord, the sandbox's bot config with Discord roles
and channels, and the unmodified discord.py client connected to the local Discord."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from bot.discord import create_adapter
from bot.discord.adapter import DiscordAdapter
from bot.metrics import Metrics
from bot.settings import BotConfig, DiscordConfig, load_bot_config
from commands.access.policy import AccessConfig
from commands.flow.layer import CommandLayer
from sandbox.cluster import Sandbox
from tests.adapters import ChatBot, started
from tests.console.driver import PROBE_TIMEOUT, with_changes
from tests.fakes.discord import GUILD_ID, TOKEN, FakeDiscord, Message
from tests.polling import eventually

ADMINS, DEPLOYERS = 930000000000000001, 930000000000000002  # guild roles
OPS, LOBBY, THREAD = 940000000000000001, 940000000000000002, 940000000000000003
ALICE, BOB, CAROL, DAVE = (950000000000000000 + n for n in (1, 2, 3, 4))
# Alice deploys, Bob and Carol are admins, Dave has no role (a viewer)
TIMINGS: dict[str, Any] = {"guild_ready_timeout": 0.05, "start_timeout": 10.0}


def discord_access() -> AccessConfig:
    """Members with the DEPLOYERS role deploy, the ADMINS role approves changes to postgres
    and restores; everyone else reads. Commands are taken in OPS (and its threads) only."""
    return AccessConfig.model_validate(
        {
            "roles": {
                "admin": {"discord_roles": [str(ADMINS)]},
                "deployer": {"discord_roles": [str(DEPLOYERS)]},
                "viewer": {"users": ["discord:*"]},
            },
            "channels": {"discord": [str(OPS)]},
            "protected_approval": {"approvals": 1, "approvers": ["admin"], "expires_after": 3600},
        }
    )


def seed(fake: FakeDiscord) -> FakeDiscord:
    fake.add_role(ADMINS, "holm-admins")
    fake.add_role(DEPLOYERS, "holm-deployers")
    fake.add_channel(OPS, "ops")
    fake.add_channel(LOBBY, "lobby")
    fake.add_channel(THREAD, "nova-rollout", parent_id=OPS)
    fake.add_member(ALICE, "alice", [DEPLOYERS])
    fake.add_member(BOB, "bob", [ADMINS])
    fake.add_member(CAROL, "carol", [ADMINS, DEPLOYERS])
    fake.add_member(DAVE, "dave")
    return fake


@pytest.fixture
async def discord_fake() -> AsyncIterator[FakeDiscord]:
    fake = seed(await FakeDiscord().start())
    try:
        yield fake
    finally:
        await fake.stop()


def discord_section(fake: FakeDiscord) -> DiscordConfig:
    return DiscordConfig(
        token=TOKEN, guild_id=GUILD_ID, api_url=fake.api_url, gateway_url=fake.gateway_url
    )


@pytest.fixture
def bot_config(sandbox: Sandbox, discord_fake: FakeDiscord) -> BotConfig:
    """The config `holmbot sandbox` writes, with Discord roles, test-sized timeouts and the
    local Discord as REST API and gateway."""
    config = with_changes(
        load_bot_config(sandbox.bot_config_path),
        health={"probe_timeout_seconds": PROBE_TIMEOUT},
        rollout={"timeout_seconds": 60.0, "health_failure_seconds": 5.0, "verify_seconds": 0},
    )
    return config.model_copy(
        update={"access": discord_access(), "discord": discord_section(discord_fake)}
    )


class Bot(ChatBot[DiscordAdapter]):
    """A command layer and the Discord adapter on it, as `holmbot run` has them."""

    async def idle(self) -> None:
        """Every notice shown, every followed operation at its end, every edit sent."""
        await self.layer.notices.join(self.adapter.platform)
        await self.adapter.outcomes.idle()


@asynccontextmanager
async def running(config: BotConfig, **timings: Any) -> AsyncIterator[Bot]:
    """The layer opened on `config` and the Discord adapter started on it; both closed after."""

    def create(layer: CommandLayer, metrics: Metrics) -> DiscordAdapter:
        return create_adapter(config, layer, metrics, **{**TIMINGS, **timings})

    async with started(config, create) as (layer, adapter, metrics):
        yield Bot(layer, adapter, metrics)


@pytest.fixture
async def bot(bot_config: BotConfig) -> AsyncIterator[Bot]:
    async with running(bot_config) as started:
        yield started


async def new_posts(fake: FakeDiscord, before: int, count: int = 1) -> list[Message]:
    """The bot's next `count` channel messages after the first `before` (waited for)."""
    return await eventually(lambda: (p := fake.posted()[before:]) and len(p) >= count and p)
