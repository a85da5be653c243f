"""Fixtures for the Slack suite: a local Slack, the sandbox's bot config with Slack users and
groups, and the unmodified bolt app connected to the local Slack."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from bot.metrics import Metrics
from bot.settings import BotConfig, SlackConfig, load_bot_config
from bot.slack.adapter import SlackAdapter, create
from commands.access.policy import AccessConfig
from commands.flow.layer import CommandLayer
from sandbox.cluster import Sandbox
from tests.adapters import ChatBot, started
from tests.console.driver import PROBE_TIMEOUT, with_changes
from tests.fakes.slack import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, Channel, FakeSlack

ADMINS = "S0ADMINS"  # a Slack user group the policy makes admins
OPS = "C0OPS"
LOBBY = "C0LOBBY"  # a channel the bot is not a member of
ALICE, BOB, CAROL, DAVE = "UALICE", "UBOB", "UCAROL", "UDAVE"  # deployer, admin, deployer, admin
# Slack's limits, test-sized where they are timings
TIMINGS: dict[str, Any] = {
    "ping_interval": 0.5,
    "watchdog_interval": 0.1,
    "hello_timeout": 0.5,
    "start_timeout": 5.0,
    "channels_ttl": 0.2,
}


def slack_access(approvals: int = 1, expires_after: int = 3600) -> AccessConfig:
    """Alice and Carol deploy; the ADMINS user group (Bob, Dave) are admins and approve
    changes to postgres."""
    return AccessConfig.model_validate(
        {
            "roles": {
                "admin": {"slack_groups": [ADMINS]},
                "deployer": {"users": [f"slack:{ALICE}", f"slack:{CAROL}"]},
                "viewer": {"users": ["slack:*"]},
            },
            "channels": {"slack": [OPS, LOBBY]},
            "protected_approval": {
                "approvals": approvals,
                "approvers": ["admin"],
                "expires_after": expires_after,
            },
        }
    )


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack().start()
    fake.channels[LOBBY] = Channel("lobby", is_member=False)
    fake.usergroups[ADMINS] = [BOB, DAVE]
    try:
        yield fake
    finally:
        await fake.stop()


def slack_section(fake: FakeSlack, mode: str = "socket", port: int = 3000) -> SlackConfig:
    return SlackConfig(
        bot_token=BOT_TOKEN,
        app_token=APP_TOKEN,
        signing_secret=SIGNING_SECRET,
        mode=mode,
        http_port=port,
        api_url=fake.api_url,
    )


@pytest.fixture
def bot_config(sandbox: Sandbox, slack: FakeSlack) -> BotConfig:
    """The config `holmbot sandbox` writes, with Slack users, test-sized timeouts and the
    local Slack as the Web API."""
    config = with_changes(
        load_bot_config(sandbox.bot_config_path),
        health={"probe_timeout_seconds": PROBE_TIMEOUT},
        rollout={"timeout_seconds": 60.0, "health_failure_seconds": 5.0, "verify_seconds": 0},
    )
    return config.model_copy(update={"access": slack_access(), "slack": slack_section(slack)})


class Bot(ChatBot[SlackAdapter]):
    """A command layer and the Slack adapter on it, as `holmbot run` has them."""

    async def idle(self) -> None:
        """Every notice shown, every followed operation at its end, every edit sent."""
        await self.adapter.idle()
        await self.layer.notices.join(self.adapter.platform)
        await self.adapter.idle()


@asynccontextmanager
async def running(config: BotConfig, **timings: Any) -> AsyncIterator[Bot]:
    """The layer opened on `config` and the Slack adapter started on it; both closed after."""

    def make(layer: CommandLayer, metrics: Metrics) -> SlackAdapter:
        return create(config, layer, metrics, **{**TIMINGS, **timings})

    async with started(config, make) as (layer, adapter, metrics):
        yield Bot(layer, adapter, metrics)


@pytest.fixture
async def bot(bot_config: BotConfig) -> AsyncIterator[Bot]:
    async with running(bot_config) as started:
        yield started
