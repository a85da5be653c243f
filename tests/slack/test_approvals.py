"""Approvals in Slack: a request message with buttons and reactions to vote with, votes by
members of an admin user group, refusals told privately, the message redrawn as it goes."""

from __future__ import annotations

from bot.settings import BotConfig
from sandbox.cluster import Sandbox
from tests.console.driver import audit_log, current_image, image
from tests.fakes.slack import FakeSlack, Message
from tests.polling import eventually
from tests.slack.conftest import ALICE, BOB, CAROL, DAVE, OPS, Bot, running, slack_access

APPROVE, DENY = "white_check_mark", "x"


async def request_message(slack: FakeSlack, user: str = ALICE) -> Message:
    """Ask for a deploy of protected postgres; the request message the bot posts."""
    before = len(slack.posted(OPS))
    ack = await slack.ack_of(await slack.command("/deploy", "postgres 16.2", user=user))
    assert ack["response_type"] == "in_channel"
    message = (await eventually(lambda: slack.posted(OPS)[before:]))[0]
    await eventually(lambda: set(message.reactions) == {APPROVE, DENY})  # the bot's, to click
    return message


async def test_a_reaction_by_a_member_of_the_admin_group_approves_and_the_deploy_runs(
    bot: Bot, slack: FakeSlack, sandbox: Sandbox
) -> None:
    request = await request_message(slack)
    shown = request.shown
    assert "approval needed for deploy postgres 16.2" in shown
    for said in ("will run", "asked by", f"<@{ALICE}>", "approvers", "votes", "none yet"):
        assert said in shown, shown
    assert f":{APPROVE}: to approve" in shown
    assert [b["text"]["text"] for b in request.buttons] == ["Approve", "Deny"]
    assert current_image(sandbox, "postgres") == image("postgres", "15.6")  # nothing ran yet

    await slack.event(slack.reaction_event(BOB, request, APPROVE))
    await eventually(lambda: "approved" in request.blocks[0]["text"]["text"])
    assert request.buttons == []  # decided: nothing left to click
    progress = (await eventually(lambda: slack.posted(OPS)[1:]))[0]
    await eventually(lambda: "*done* after" in progress.shown, timeout=60)
    await bot.idle()

    assert current_image(sandbox, "postgres") == image("postgres", "16.2")
    assert f"<@{ALICE}>" in slack.replies(progress.ts)[0].shown
    entries = await audit_log(bot.layer.clients.config)
    votes = [e for e in entries if e["action"] == "approve"]
    assert [(e["user"], e["outcome"]) for e in votes] == [(f"slack:{BOB}", "approved")]
    deploy = [e for e in entries if e["action"] == "deploy" and e["outcome"] == "ok"]
    assert deploy[0]["user"] == f"slack:{ALICE}" and deploy[0]["approvers"] == [f"slack:{BOB}"]
    # the admin group was looked up once, however many users asked
    assert len(slack.calls_of("usergroups.users.list")) == 1


async def test_a_button_approves_and_refused_votes_are_told_privately(
    bot: Bot, slack: FakeSlack, sandbox: Sandbox
) -> None:
    request = await request_message(slack)
    # Alice may not approve her own request, by reaction or by button
    await slack.event(slack.reaction_event(ALICE, request, APPROVE))
    told = await eventually(lambda: slack.ephemeral_to(ALICE))
    assert f"your :{APPROVE}: does not count" in told[0]["shown"], told
    assert "asked for" in told[0]["shown"] and "cannot approve it" in told[0]["shown"], told
    await slack.ack_of(await slack.click(request, "Approve", ALICE))
    told = await eventually(lambda: slack.ephemeral_to(ALICE)[1:])
    assert "cannot approve it" in told[0]["shown"], told
    # Carol deploys but is no admin: her click is refused, to her alone
    await slack.ack_of(await slack.click(request, "Approve", CAROL))
    told = await eventually(lambda: slack.ephemeral_to(CAROL))
    assert "admin" in told[0]["shown"], told
    assert "none yet" in request.shown  # nothing counted
    assert current_image(sandbox, "postgres") == image("postgres", "15.6")

    await slack.ack_of(await slack.click(request, "Approve", DAVE))
    await eventually(lambda: "approved" in request.blocks[0]["text"]["text"])
    progress = (await eventually(lambda: slack.posted(OPS)[1:]))[0]
    await eventually(lambda: "*done* after" in progress.shown, timeout=60)
    await bot.idle()
    assert current_image(sandbox, "postgres") == image("postgres", "16.2")
    # the voter's answer is private: no message in the channel but the request, its
    # progress message and the threaded result
    assert [m.ts for m in slack.posted(OPS) if m.thread_ts is None] == [request.ts, progress.ts]
    assert slack.ephemeral_to(DAVE)


async def test_a_removed_reaction_withdraws_the_vote(
    bot_config: BotConfig, slack: FakeSlack, sandbox: Sandbox
) -> None:
    config = bot_config.model_copy(update={"access": slack_access(approvals=2)})
    async with running(config) as bot:
        request = await request_message(slack)
        await slack.event(slack.reaction_event(BOB, request, APPROVE))
        await eventually(lambda: f"✓ <@{BOB}>" in request.shown)
        await slack.event(slack.reaction_event(BOB, request, APPROVE, removed=True))
        await eventually(lambda: "none yet" in request.shown)
        assert request.buttons  # still pending
        await bot.idle()
        entries = await audit_log(config)
    assert [e["outcome"] for e in entries if e["action"] in ("approve", "withdraw")] == [
        "voted",
        "withdrawn",
    ]
    assert current_image(sandbox, "postgres") == image("postgres", "15.6")


async def test_an_expired_request_message_says_so_and_offers_nothing(
    bot_config: BotConfig, slack: FakeSlack, sandbox: Sandbox
) -> None:
    config = bot_config.model_copy(update={"access": slack_access(expires_after=1)})
    async with running(config) as bot:
        request = await request_message(slack)
        await eventually(lambda: "expired" in request.shown)
        assert request.buttons == []
        assert f":{APPROVE}: to approve" not in request.shown
        await slack.event(slack.reaction_event(BOB, request, APPROVE))  # too late
        told = await eventually(lambda: slack.ephemeral_to(BOB))
        assert "expired" in told[0]["shown"]
        await bot.idle()
    assert current_image(sandbox, "postgres") == image("postgres", "15.6")


async def test_a_reaction_made_while_disconnected_is_counted_after_reconnecting(
    bot: Bot, slack: FakeSlack, sandbox: Sandbox
) -> None:
    request = await request_message(slack)
    slack.reaction_event(BOB, request, APPROVE)  # made while the bot was away: never delivered
    await slack.drop()
    await eventually(lambda: "approved" in request.blocks[0]["text"]["text"])
    progress = (await eventually(lambda: slack.posted(OPS)[1:]))[0]
    await eventually(lambda: "*done* after" in progress.shown, timeout=60)
    await bot.idle()
    assert current_image(sandbox, "postgres") == image("postgres", "16.2")
    assert bot.metric("holmbot_chat_reconnects_total", platform="slack") == 1
    assert len(slack.calls_of("reactions.get")) == 1  # the one pending request message, read
    entries = await audit_log(bot.layer.clients.config)
    votes = [(e["user"], e["outcome"]) for e in entries if e["action"] == "approve"]
    assert votes == [(f"slack:{BOB}", "approved")]  # Bob's, once; the bot's own left out
