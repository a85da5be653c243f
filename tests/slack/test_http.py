"""HTTP mode: Slack's requests signed with the signing secret; a bad signature and a request
older than five minutes are refused with 401 and run nothing."""

from __future__ import annotations

import json
import time

from bot.settings import BotConfig
from tests.console.driver import audit_log
from tests.fakes.slack import FakeSlack, signed_post
from tests.polling import eventually
from tests.slack.conftest import ALICE, OPS, running, slack_section


async def test_signed_requests_run_and_bad_or_stale_signatures_are_refused(
    bot_config: BotConfig, slack: FakeSlack
) -> None:
    config = bot_config.model_copy(update={"slack": slack_section(slack, mode="http")})
    async with running(config, http_host="127.0.0.1", http_port=0) as bot:
        url = bot.adapter.connection.url  # type: ignore[union-attr]
        assert bot.adapter.status().ready

        payload = slack.command_payload("/health", "nova", user=ALICE)
        status, body = await signed_post(url, "command", payload)
        assert status == 200
        assert json.loads(body)["response_type"] == "in_channel"
        answer = (await eventually(lambda: slack.posted(OPS)))[0]
        assert "nova" in answer.shown

        forged = slack.command_payload("/deploy", "nova v2", user=ALICE)
        status, _ = await signed_post(url, "command", forged, secret="not-the-secret")
        assert status == 401
        stale = int(time.time()) - 6 * 60
        status, _ = await signed_post(url, "command", forged, timestamp=stale)
        assert status == 401
        status, _ = await signed_post(url, "command", forged, signature="v0=deadbeef")
        assert status == 401

        mention = slack.event_body(slack.mention_event(ALICE, "health"))
        status, _ = await signed_post(url, "event", mention)
        assert status == 200
        await eventually(lambda: len(slack.posted(OPS)) == 2)
        await bot.idle()
    entries = await audit_log(config)
    assert [e["command"] for e in entries] == ["health nova", "health"]  # nothing forged ran
