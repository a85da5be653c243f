"""Slash commands and mentions over Socket Mode: acked within Slack's 3 s, answered in Block
Kit, bad input answered in the ack itself, nothing run where the bot cannot report."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from commands.core.models import Invocation, Outcome
from sandbox.cluster import Sandbox
from tests.console.driver import audit_log, desired_state
from tests.fakes.slack import FakeSlack
from tests.polling import eventually
from tests.slack.conftest import ALICE, LOBBY, OPS, Bot

READS = [
    ("/health", "", "deployments"),
    ("/health", "nova", "nova"),
    ("/logs", "nova --tail 5", "nova logs:"),
    ("/rollback", "nova history", "REVISION"),
    ("/backup", "list", "backup"),
    ("/holmbot", "status nova", "successfully rolled out"),
    ("/holmbot", "", "holmbot commands"),
    ("/holmbot", "approvals", "approval"),
]


async def test_every_read_command_is_echoed_in_the_ack_then_answered_in_the_channel(
    bot: Bot, slack: FakeSlack
) -> None:
    for command, text, expected in READS:
        before = len(slack.posted(OPS))
        envelope = await slack.command(command, text, user=ALICE)
        ack = await slack.ack_of(envelope)
        assert ack["response_type"] == "in_channel", (command, ack)
        assert f"{command} {text}".strip() in ack["text"]
        posted = await eventually(lambda b=before: slack.posted(OPS)[b:])
        assert len(posted) == 1, [m.shown for m in posted]
        assert expected in posted[0].shown, (command, text, posted[0].shown)
        assert posted[0].blocks[0]["type"] in ("header", "section")
    # the audit log names each command with the Slack user
    entries = await audit_log(bot.layer.clients.config)
    assert {e["user"] for e in entries} == {f"slack:{ALICE}"}
    assert len(entries) == len(READS)
    assert bot.adapter.status().ready
    # every Web API call counted by method and status
    posts = bot.metric(
        "holmbot_chat_api_calls_total", platform="slack", method="chat.postMessage", status="200"
    )
    assert posts == len(READS)
    assert bot.metric("holmbot_chat_last_event_timestamp_seconds", platform="slack") > 0


async def test_a_mention_runs_the_text_after_it_and_answers_in_its_thread(
    bot: Bot, slack: FakeSlack
) -> None:
    root = slack.add_message(OPS, ALICE, "is nova fine?")
    await slack.event(slack.mention_event(ALICE, "health nova", thread_ts=root.ts))
    answer = (await eventually(lambda: slack.replies(root.ts)))[0]
    assert answer.channel == OPS
    assert "nova" in answer.shown
    entries = await audit_log(bot.layer.clients.config)
    assert [(e["command"], e["user"]) for e in entries] == [("health nova", f"slack:{ALICE}")]


async def test_bad_input_is_answered_privately_in_the_ack_and_nothing_runs(
    bot: Bot, slack: FakeSlack, sandbox: Sandbox
) -> None:
    before = desired_state(sandbox, "nova")
    cases = [
        (ALICE, "/deploy", "", "usage: deploy SERVICE [TAG]"),  # malformed
        (ALICE, "/holmbot", "deploi nova v2", "deploy"),  # a typo: did you mean
        ("UEVE", "/deploy", "nova v2", "deployer"),  # a viewer may not
    ]
    for user, command, text, said in cases:
        ack = await slack.ack_of(await slack.command(command, text, user=user))
        assert ack["response_type"] == "ephemeral", ack
        shown = "\n".join(block_texts(ack))
        assert said in shown, (command, text, shown)
    # a channel the bot is not in: refused with how to invite it, audited, not run
    ack = await slack.ack_of(await slack.command("/deploy", "nova v2", user=ALICE, channel=LOBBY))
    assert ack["response_type"] == "ephemeral"
    assert "/invite @holmbot" in "\n".join(block_texts(ack))
    await bot.idle()
    assert slack.posted() == []
    assert desired_state(sandbox, "nova") == before
    entries = await audit_log(bot.layer.clients.config)
    assert [e["outcome"] for e in entries] == ["refused"] * 4
    assert "not a member" in entries[-1]["detail"]


async def test_a_command_that_runs_is_acked_before_it_starts(
    bot: Bot, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    happened: list[str] = []
    handle = bot.layer.handle

    async def recorded(invocation: Invocation) -> Outcome:
        happened.append(f"run {invocation.text}")
        return await handle(invocation)

    async def ack(**answer: Any) -> None:
        happened.append(f"ack {answer.get('response_type')}")

    monkeypatch.setattr(bot.layer, "handle", recorded)
    await bot.adapter.handlers.on_command(ack, slack.command_payload("/health", "nova", user=ALICE))
    await bot.idle()
    assert happened == ["ack in_channel", "run health nova"]
    assert "nova" in slack.posted(OPS)[0].shown


async def test_commands_sent_together_are_each_acked_with_the_echo_and_answered_once(
    bot: Bot, slack: FakeSlack
) -> None:
    users = [f"UOPS{n}" for n in range(10)]
    envelopes = await asyncio.gather(*(slack.command("/health", "nova", user=u) for u in users))
    acks = [await slack.ack_of(envelope) for envelope in envelopes]
    assert {ack["response_type"] for ack in acks} == {"in_channel"}
    posted = await eventually(lambda: len(slack.posted(OPS)) >= len(users) and slack.posted(OPS))
    await bot.idle()
    assert len(slack.posted(OPS)) == len(users)
    assert all("nova" in message.shown for message in posted)
    assert len(slack.calls_of("conversations.info")) == 1  # the channel looked up once


def block_texts(ack: dict) -> list[str]:
    """The texts of an ack's blocks (what the user sees), the fallback text if none."""
    texts = []
    for block in ack.get("blocks") or []:
        if "text" in block:
            texts.append(block["text"]["text"])
        texts.extend(field["text"] for field in block.get("fields", []))
    return texts or [ack.get("text", "")]
