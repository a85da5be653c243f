"""The gateway connection: commands taken as soon as the guild is in (before discord.py's
READY), a guild that comes after READY waited for, a dropped connection that resumes and gets
what it missed, a session that cannot resume (votes by reaction made meanwhile counted by
reading the request message), and nothing run twice: not for an event replayed on RESUME, nor
redelivered after a restart."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.discord import create_adapter
from bot.metrics import Metrics
from bot.settings import BotConfig
from commands.flow.layer import CommandLayer
from tests.console.driver import audit_log
from tests.discord.conftest import ALICE, BOB, OPS, TIMINGS, Bot, running
from tests.discord.test_approvals import APPROVE, ask, results_for, votes
from tests.discord.test_commands import filled
from tests.fakes.discord import FakeDiscord
from tests.polling import eventually


async def offline(bot: Bot, fake: FakeDiscord) -> None:
    """Drop the bot's connection and keep it from coming back until `fake.gate` is set."""
    fake.gate.clear()
    await fake.drop()
    await eventually(lambda: not bot.adapter.status().connected)


async def test_commands_are_taken_once_the_guild_is_in_before_discordpys_ready(
    bot_config: BotConfig, discord_fake: FakeDiscord
) -> None:
    # discord.py's READY waits this long after the last GUILD_CREATE: the start does not
    async with running(bot_config, guild_ready_timeout=600.0) as bot:
        client = bot.adapter.client
        assert client is not None and not client.is_ready()
        assert bot.adapter.status().ready
        typed = await discord_fake.say(OPS, ALICE, "!status nova")
        [reply] = await eventually(lambda: discord_fake.replies_to(typed.id))
        assert "nova" in reply.shown
        assert not client.is_ready()
        assert bot.metric("holmbot_chat_reconnects_total", platform="discord") == 0


async def test_a_guild_that_comes_after_discordpys_ready_is_waited_for(
    bot_config: BotConfig, discord_fake: FakeDiscord
) -> None:
    held = asyncio.Event()
    sent = discord_fake.dispatch

    async def holding_the_guild(event: str, data: dict[str, Any]) -> int:
        if event != "GUILD_CREATE" or held.is_set():
            return await sent(event, data)

        async def later() -> None:
            await held.wait()
            await sent(event, data)

        asyncio.get_running_loop().create_task(later())
        return 0

    discord_fake.dispatch = holding_the_guild  # type: ignore[method-assign]
    layer = await CommandLayer.open(bot_config)
    adapter = create_adapter(bot_config, layer, Metrics(), **TIMINGS)
    try:
        start = asyncio.create_task(adapter.start())
        await eventually(lambda: adapter.client is not None and adapter.client.is_ready())
        assert not start.done()  # READY came (the guild unavailable in it): still waiting
        assert not adapter.status().ready
        held.set()
        await start
        assert adapter.status().ready
        typed = await discord_fake.say(OPS, ALICE, "!status nova")
        [reply] = await eventually(lambda: discord_fake.replies_to(typed.id))
        assert "nova" in reply.shown
    finally:
        await adapter.close()
        await layer.close()


async def test_a_dropped_gateway_resumes_and_gets_what_it_missed(
    bot: Bot, discord_fake: FakeDiscord
) -> None:
    session = discord_fake.session
    await offline(bot, discord_fake)
    status = bot.adapter.status()
    assert not status.ready and "reconnecting" in status.detail
    typed = await discord_fake.say(OPS, ALICE, "!status nova")  # while the bot is away
    discord_fake.gate.set()
    [reply] = await eventually(lambda: discord_fake.replies_to(typed.id))
    assert "nova" in reply.shown
    await eventually(lambda: bot.adapter.status().ready)
    assert [r["session_id"] for r in discord_fake.resumes] == [session.id]
    assert len(discord_fake.identifies) == 1  # resumed, not a new session
    assert bot.metric("holmbot_chat_reconnects_total", platform="discord") == 1
    [entry] = await audit_log(bot.layer.clients.config)
    assert (entry["command"], entry["outcome"]) == ("status nova", "ok")


async def test_a_reaction_made_while_no_session_saw_it_is_counted_after_reconnecting(
    bot: Bot, discord_fake: FakeDiscord
) -> None:
    request, _ = await ask(discord_fake, ALICE, "deploy postgres 16.2")
    await offline(bot, discord_fake)
    discord_fake.resumable = False  # the session is gone: Discord replays nothing
    await discord_fake.react(BOB, request, APPROVE)
    discord_fake.gate.set()
    await eventually(lambda: len(discord_fake.identifies) == 2)  # a new session
    await eventually(lambda: ": approved" in request.embeds[0]["title"] or None)
    result = await eventually(lambda: results_for(discord_fake, ALICE))
    await bot.idle()
    assert "successfully rolled out" in result[0].shown
    entries = await audit_log(bot.layer.clients.config)
    assert votes(entries) == [(f"discord:{BOB}", "approved")]
    assert discord_fake.replies_to(request.id)[0].shown.startswith("Deploying postgres:16.2")
    assert bot.metric("holmbot_chat_reconnects_total", platform="discord") == 1


async def test_events_replayed_on_resume_run_once(bot: Bot, discord_fake: FakeDiscord) -> None:
    request, _ = await ask(discord_fake, ALICE, "deploy postgres 16.2")
    typed = await discord_fake.say(OPS, ALICE, "!status nova")
    await eventually(lambda: discord_fake.replies_to(typed.id))
    await discord_fake.react(BOB, request, APPROVE)
    await eventually(lambda: results_for(discord_fake, ALICE))
    await bot.idle()
    posted = len(discord_fake.posted())
    # Discord replays events the bot had already seen: the message, the vote, and more
    seen = discord_fake.session.seq
    discord_fake.replay_extra = seen
    await discord_fake.drop()
    await eventually(lambda: discord_fake.resumes and bot.adapter.status().ready)
    await bot.idle()
    assert discord_fake.session.seq > seen  # the replay went out, then RESUMED
    assert len(discord_fake.posted()) == posted  # nothing said twice
    assert discord_fake.replies_to(typed.id)[1:] == []
    entries = await audit_log(bot.layer.clients.config)
    assert votes(entries) == [(f"discord:{BOB}", "approved")]
    ran = [e["command"] for e in entries if e["outcome"] == "ok"]
    assert ran.count("status nova") == 1 and ran.count("deploy postgres 16.2") == 1
    replayed = [e["command"] for e in entries if e["outcome"] == "duplicate"]
    assert "status nova" in replayed and any(c.startswith("approve ") for c in replayed)


async def test_a_command_delivered_again_after_a_restart_runs_once(
    bot_config: BotConfig, discord_fake: FakeDiscord
) -> None:
    async with running(bot_config) as first:
        interaction = await discord_fake.slash(ALICE, OPS, "health", service="nova")
        await eventually(lambda: filled(discord_fake.answer_message(interaction)))
        typed = await discord_fake.say(OPS, ALICE, "!status nova")
        await eventually(lambda: discord_fake.replies_to(typed.id))
        await first.idle()
    posted = len(discord_fake.posted())
    async with running(bot_config) as second:
        await discord_fake.redeliver(interaction)
        await discord_fake.redeliver(typed)
        await eventually(
            lambda: (
                second.metric("holmbot_commands_total", command="health", outcome="duplicate")
                + second.metric("holmbot_commands_total", command="status", outcome="duplicate")
                == 2
            )
        )
        await second.idle()
    assert len(interaction.answers) == 1  # not answered again (Discord would say 40060)
    assert len(discord_fake.posted()) == posted
    entries = await audit_log(bot_config)
    assert [e["outcome"] for e in entries] == ["ok", "ok", "duplicate", "duplicate"]
