"""Live progress: one message per operation, a reply to the command's answer, edited in place
through 429s to its final state, the result a reply that mentions the requester; a message
grown old is continued in a fresh one; after a restart the same message goes on."""

from __future__ import annotations

import datetime
import itertools
import re

from bot.discord.progress import EDIT_INTERVAL
from bot.settings import BotConfig
from sandbox.cluster import Sandbox
from tests.console.driver import audit_log, image, with_changes
from tests.discord.conftest import ALICE, OPS, Bot, running
from tests.fakes.discord import FakeDiscord, Message
from tests.polling import eventually
from tests.slack.test_progress import deployment, rolled_out

OPERATION = re.compile(r"operation (\S+) ·")
EDIT = "PATCH /channels/{channel_id}/messages/{message_id}"
SUCCESS = 0x2ECC71  # discord.Colour.green()


def progress_of(fake: FakeDiscord, answer: Message) -> Message | None:
    """The progress message that replies to a command's answer, once posted."""
    return next((m for m in fake.posted() if m.reference == answer.id), None)


def ended(message: Message) -> bool:
    return " done after " in message.shown or " failed after " in message.shown


async def test_a_deploy_is_edited_to_its_final_state_through_429s(
    bot_config: BotConfig, discord_fake: FakeDiscord, sandbox: Sandbox
) -> None:
    discord_fake.edit_429_share = 0.4
    config = with_changes(bot_config, rollout={"verify_seconds": 2.0})  # a few seconds' work
    async with running(config) as bot:
        interaction = await discord_fake.slash(ALICE, OPS, "deploy", service="nova", tag="v2")
        answer = await eventually(lambda: discord_fake.answer_message(interaction))
        progress = await eventually(lambda: progress_of(discord_fake, answer))
        await eventually(lambda: ended(progress), timeout=60)
        await bot.idle()
        limited = bot.metric(
            "holmbot_chat_rate_limited_total",
            platform="discord",
            method="PATCH /channels/{id}/messages/{id}",
        )

    assert answer.embeds[0]["title"] == "Deploying nova:v2"
    assert f"{image('nova', 'v1.1')} → {image('nova', 'v2')}" in answer.shown
    # one message went through the phases, with a bar, and ended green
    shown = [" ".join(e.get("description", "") for e in v["embeds"]) for v in progress.versions]
    assert any("▱" in s and "progressing: " in s for s in shown), shown  # a bar while going
    assert "▰▰▰▰▰▰▰▰▰▰ 1/1  done after" in progress.shown
    assert 'deployment "nova" successfully rolled out' in progress.shown
    assert progress.colour == SUCCESS and progress.buttons == []
    # a share of its edits was answered 429 (with Via, Retry-After, X-RateLimit-*), waited out
    edits = [c for c in discord_fake.calls_to(EDIT) if c.path.endswith(f"/{progress.id}")]
    refused = [c for c in edits if c.status == 429]
    assert refused and limited == len(refused)
    assert edits[-1].status == 200 and len(progress.versions) == 1 + len(edits) - len(refused)
    # at most one edit a second: each went out a second or more after the one before ended
    shown_at = [version["at"] for version in progress.versions[1:]]
    assert all(b - a >= EDIT_INTERVAL for a, b in itertools.pairwise(shown_at)), shown_at
    # the result: a reply to the progress message that mentions (pings) the requester
    [result] = discord_fake.replies_to(progress.id)
    assert result.content == f"<@{ALICE}>" and result.mentions == [ALICE]
    assert "successfully rolled out" in result.shown
    assert len(discord_fake.posted()) == 3  # the answer, its progress message, the result
    # the cluster, as the Kubernetes API has it
    live = await deployment(sandbox, "nova")
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == image("nova", "v2")
    assert rolled_out(live)


async def test_a_prefix_rollback_follows_in_a_reply_to_the_command(
    bot: Bot, discord_fake: FakeDiscord, sandbox: Sandbox
) -> None:
    typed = await discord_fake.say(OPS, ALICE, "!rollback nova")
    answer = (await eventually(lambda: discord_fake.replies_to(typed.id)))[0]
    assert "rolled back to revision 1" in answer.shown
    progress = await eventually(lambda: progress_of(discord_fake, answer))
    await eventually(lambda: ended(progress), timeout=60)
    await bot.idle()
    assert " done after " in progress.shown
    [result] = discord_fake.replies_to(progress.id)
    assert result.mentions == [ALICE]
    live = await deployment(sandbox, "nova")
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == image("nova", "v1")
    entries = await audit_log(bot.layer.clients.config)
    assert [(e["command"], e["outcome"]) for e in entries] == [("rollback nova", "ok")]


async def test_an_operation_outliving_its_message_goes_on_in_a_fresh_one(
    bot_config: BotConfig, discord_fake: FakeDiscord, sandbox: Sandbox
) -> None:
    """Discord caps edits of messages over an hour old: test-sized, an hour is half a second."""
    config = with_changes(bot_config, rollout={"verify_seconds": 1.5})
    fresh_after = datetime.timedelta(seconds=0.5)
    async with running(config, fresh_after=fresh_after) as bot:
        interaction = await discord_fake.slash(ALICE, OPS, "deploy", service="nova", tag="v2")
        answer = await eventually(lambda: discord_fake.answer_message(interaction))
        first = await eventually(lambda: progress_of(discord_fake, answer))
        result = await eventually(lambda: [m for m in discord_fake.posted() if m.mentions], 60)
        await bot.idle()
        operation_id = OPERATION.search(first.shown)[1]
        bound = await bot.layer.state.messages_of("operation", operation_id)
    moved = [m for m in discord_fake.posted() if m.id not in (answer.id, first.id)][:-1]
    assert moved and ended(moved[-1]) and result[0].reference == moved[-1].id
    assert not ended(first)  # left as it was when it grew old
    # each message was bound to the operation as it was posted: a restart edits the newest
    assert [int(b.message_id) for b in bound] == [first.id, *(m.id for m in moved)]
    assert rolled_out(await deployment(sandbox, "nova"))


async def test_an_edit_discord_refuses_as_too_old_goes_on_in_a_fresh_message(
    bot: Bot, discord_fake: FakeDiscord
) -> None:
    discord_fake.edit_cap_after = 0.0  # every edit of a posted message is refused as too old
    interaction = await discord_fake.slash(ALICE, OPS, "backup", "create", name="nightly")
    answer = await eventually(lambda: discord_fake.answer_message(interaction))
    first = await eventually(lambda: progress_of(discord_fake, answer))
    result = await eventually(lambda: [m for m in discord_fake.posted() if m.mentions], 60)
    await bot.idle()
    refused = [c for c in discord_fake.calls_to(EDIT) if c.code == 30046]
    assert refused, "no edit was refused as too old"
    last = next(m for m in discord_fake.posted() if m.id == result[0].reference)
    assert last.id != first.id and ended(last)


async def test_after_a_restart_the_operation_goes_on_in_the_same_message(
    bot_config: BotConfig, discord_fake: FakeDiscord, sandbox: Sandbox
) -> None:
    config = with_changes(bot_config, rollout={"verify_seconds": 3.0})  # long enough to stop in
    async with running(config):
        typed = await discord_fake.say(OPS, ALICE, "!deploy gateway v2.2.0")
        answer = (await eventually(lambda: discord_fake.replies_to(typed.id)))[0]
        progress = await eventually(lambda: progress_of(discord_fake, answer))
        await eventually(lambda: len(progress.versions) >= 2)  # it is under way
    assert not ended(progress)  # stopped before its end
    stopped_at = len(progress.versions)

    async with running(config) as second:
        await eventually(lambda: "following deploy gateway:v2.2.0 again" in progress.shown)
        await eventually(lambda: ended(progress), timeout=60)
        await second.idle()

    assert len(progress.versions) > stopped_at and " done after " in progress.shown
    assert [m.id for m in discord_fake.posted() if m.reference == answer.id] == [progress.id]
    [result] = discord_fake.replies_to(progress.id)
    assert result.mentions == [ALICE]
    assert rolled_out(await deployment(sandbox, "gateway"))
    deploys = [e for e in await audit_log(config) if e["action"] == "deploy"]
    assert [e["outcome"] for e in deploys] == ["ok"]
