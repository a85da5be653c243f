"""Socket Mode kept alive: a dropped connection that comes back silent (open, but Slack never
says hello: bolt-python#1529) is noticed, replaced until Slack answers, and reported."""

from __future__ import annotations

import re

import pytest
from pydantic import SecretStr

from bot.adapter import AdapterStatus
from bot.settings import BotConfig
from bot.slack.connection import SlackRefused
from tests.fakes.slack import FakeSlack
from tests.polling import eventually
from tests.slack.conftest import ALICE, OPS, Bot, running, slack_section


def status_when(bot: Bot, *, connected: bool) -> AdapterStatus | None:
    status = bot.adapter.status()
    return status if status.connected is connected else None


async def test_a_dropped_connection_that_comes_back_silent_is_replaced_and_the_gap_shown(
    bot: Bot, slack: FakeSlack
) -> None:
    status = bot.adapter.status()
    assert status.ready and status.detail == ""
    slack.silent = True
    await slack.drop()

    down = await eventually(lambda: status_when(bot, connected=False))
    assert not down.ready
    assert re.search(r"since \d\d:\d\d:\d\d UTC \(\d+\.\ds\); reconnecting", down.detail), down
    opened = slack.connections_opened
    await eventually(lambda: slack.connections_opened >= opened + 2)  # silent ones replaced
    assert not bot.adapter.status().connected
    assert "has not said hello" in bot.adapter.status().detail

    slack.silent = False
    up = await eventually(lambda: status_when(bot, connected=True))
    gap = re.search(r"reconnected 1 time\(s\); the last gap was (\d+\.\d)s", up.detail)
    assert gap is not None, up.detail
    assert float(gap[1]) > 0
    assert bot.metric("holmbot_chat_reconnects_total", platform="slack") == 1
    # and commands arrive again
    ack = await slack.ack_of(await slack.command("/health", user=ALICE))
    assert ack["response_type"] == "in_channel"
    await eventually(lambda: slack.posted(OPS))


@pytest.mark.parametrize(
    ("token", "setting"),
    [("bot_token", "HOLMBOT_SLACK__BOT_TOKEN"), ("app_token", "HOLMBOT_SLACK__APP_TOKEN")],
)
async def test_a_refused_token_fails_the_start_and_names_its_setting(
    bot_config: BotConfig, slack: FakeSlack, token: str, setting: str
) -> None:
    section = slack_section(slack).model_copy(update={token: SecretStr("xoxb-revoked")})
    config = bot_config.model_copy(update={"slack": section})
    with pytest.raises(SlackRefused, match=f"invalid_auth.*{setting}"):
        async with running(config):
            pass
