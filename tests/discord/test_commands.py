"""Slash commands and prefix messages over the wire: answered once and within Discord's 3 s,
as embeds, bad input privately with its usage; commands synced only when changed; prefix
commands off (and said so) without the message content intent."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.discord.adapter import COMMANDS_MARKER, PREFIX_OFF
from bot.settings import BotConfig
from sandbox.cluster import Sandbox
from tests.console.driver import audit_log, desired_state, with_changes
from tests.discord.conftest import ALICE, DAVE, LOBBY, OPS, THREAD, Bot, running, seed
from tests.fakes.discord import BOT_ID, CONTENT_INTENT, EPHEMERAL, FakeDiscord, Message
from tests.polling import eventually

# (slash command, subcommand, options), the same as typed text, and what the answer shows
READS = [
    (("health", None, {}), "health", "nodes: "),
    (("health", None, {"service": "nova"}), "health nova", "nova: healthy"),
    (("logs", None, {"service": "nova", "tail": 5}), "logs nova --tail 5", "nova logs:"),
    (("rollback", None, {"service": "nova", "history": True}), "rollback nova history", "REVISION"),
    (("backup", "list", {}), "backup list", "No backups yet"),
    (("holmbot", None, {"text": "status nova"}), "status nova", "successfully rolled out"),
    (("holmbot", None, {"text": "help"}), "help", "holmbot commands"),
    (("holmbot", None, {"text": "approvals"}), "approvals", "no pending approval requests"),
]


def filled(message: Message | None) -> Message | None:
    """The message once it shows an answer (not "thinking…")."""
    return message if message is not None and message.embeds else None


async def test_every_read_command_as_a_slash_command_and_as_a_prefix_message(
    bot: Bot, discord_fake: FakeDiscord
) -> None:
    for (name, sub, values), text, expected in READS:
        interaction = await discord_fake.slash(ALICE, OPS, name, sub, **values)
        answer = await eventually(lambda i=interaction: filled(discord_fake.answer_message(i)))
        # deferred before it ran ("thinking…"), then filled in, in the channel
        assert interaction.kind == 5 and not answer.ephemeral, (name, interaction.answers)
        assert expected in answer.shown, (name, values, answer.shown)
        assert answer.embeds and answer.colour is not None

        typed = await discord_fake.say(OPS, ALICE, f"!{text}")
        reply = (await eventually(lambda m=typed: discord_fake.replies_to(m.id)))[0]
        assert expected in reply.shown, (text, reply.shown)
        assert reply.mentions == []  # a reply to a command does not ping its author
    await bot.idle()
    assert all(len(i.answers) == 1 for i in discord_fake.interactions.values())
    entries = await audit_log(bot.layer.clients.config)
    assert [e["command"] for e in entries] == [text for _, text, _ in READS for _ in (1, 2)]
    assert {e["user"] for e in entries} == {f"discord:{ALICE}"}
    assert bot.adapter.status().ready
    assert bot.metric(
        "holmbot_chat_api_calls_total",
        platform="discord",
        method="POST /interactions/{id}/{token}/callback",
        status="200",
    ) == len(READS)


async def test_a_command_in_a_thread_is_answered_there_and_counts_as_its_channel(
    bot: Bot, discord_fake: FakeDiscord
) -> None:
    interaction = await discord_fake.slash(ALICE, THREAD, "health", service="nova")
    answer = await eventually(lambda: discord_fake.answer_message(interaction))
    assert answer.channel_id == THREAD and answer.shown.startswith(("✅ nova: ", "❌ nova: "))
    [entry] = await audit_log(bot.layer.clients.config)
    assert entry["channel"] == str(OPS)


async def test_autocomplete_offers_the_clusters_services_and_the_registrys_tags_newest_first(
    bot: Bot, discord_fake: FakeDiscord
) -> None:
    asked = await discord_fake.autocomplete(ALICE, OPS, "deploy", "service", service="pu")
    await eventually(lambda: asked.answers)
    assert asked.kind == 8 and [c["value"] for c in asked.choices] == ["pulse"]
    everything = await discord_fake.autocomplete(ALICE, OPS, "logs", "service", service="")
    await eventually(lambda: everything.answers)
    names = [c["value"] for c in everything.choices]
    assert names == sorted(names) and {"nova", "postgres", "gateway"} <= set(names)

    newest_first = await bot.layer.clients.registry.tags("nova")
    assert newest_first[0] == "v3" and newest_first != sorted(newest_first)
    tags = await discord_fake.autocomplete(ALICE, OPS, "deploy", "tag", service="nova", tag="")
    await eventually(lambda: tags.answers)
    assert [c["value"] for c in tags.choices] == newest_first
    typed = await discord_fake.autocomplete(ALICE, OPS, "deploy", "tag", service="nova", tag="v2")
    await eventually(lambda: typed.answers)
    assert [c["value"] for c in typed.choices] == [t for t in newest_first if "v2" in t]
    assert await audit_log(bot.layer.clients.config) == []  # suggestions run no command


async def test_bad_input_is_answered_privately_with_its_usage_and_nothing_runs(
    bot: Bot, discord_fake: FakeDiscord, sandbox: Sandbox
) -> None:
    before = desired_state(sandbox, "nova")
    cases = [
        (ALICE, OPS, "holmbot", {"text": "deploy"}, "usage: deploy SERVICE [TAG]"),
        (ALICE, OPS, "holmbot", {"text": "deploi nova v2"}, "deploy"),  # did you mean
        (DAVE, OPS, "deploy", {"service": "nova", "tag": "v2"}, "deployer"),  # no role
        (ALICE, LOBBY, "health", {}, "does not take commands in this channel"),
    ]
    for user, channel, name, values, said in cases:
        interaction = await discord_fake.slash(user, channel, name, **values)
        answer = await eventually(lambda i=interaction: discord_fake.answer_message(i))
        assert answer.ephemeral and interaction.kind == 4, (name, values)
        assert said in answer.shown, (values, answer.shown)
    typed = await discord_fake.say(OPS, ALICE, "!deploy")
    [reply] = await eventually(lambda: discord_fake.replies_to(typed.id))
    assert reply.embeds == [] and "`usage: deploy SERVICE [TAG]" in reply.content
    await bot.idle()
    assert [m for m in discord_fake.posted() if m.reference != typed.id] == []
    assert desired_state(sandbox, "nova") == before
    entries = await audit_log(bot.layer.clients.config)
    assert [e["outcome"] for e in entries] == ["refused"] * 5


async def test_an_interaction_that_takes_longer_than_3_s_is_deferred_then_answered(
    bot_config: BotConfig, discord_fake: FakeDiscord
) -> None:
    slow = with_changes(bot_config, health={"probe_timeout_seconds": 3.5})
    async with running(slow, defer_after=0.5):
        interaction = await discord_fake.slash(ALICE, OPS, "health", service="test-dashboard")
        await eventually(lambda: interaction.answers)
        assert interaction.kind == 5  # "thinking…", within the deadline
        assert interaction.answered_at - interaction.created < 3.0
        answer = await eventually(
            lambda: (m := discord_fake.answer_message(interaction)) and m.embeds and m
        )
    assert "test-dashboard" in answer.shown and answer.flags == 0  # no longer loading
    assert len(interaction.answers) == 1 and answer.versions[-1]["embeds"]
    assert discord_fake.calls_to("POST /interactions/{interaction_id}/{token}/callback", 400) == []


async def test_a_40_kb_log_comes_as_an_attachment_with_its_newest_lines_shown(
    bot: Bot, discord_fake: FakeDiscord, sandbox: Sandbox
) -> None:
    from tests.slack.test_files import started_log

    log = await eventually(lambda: started_log(sandbox, "nova"))
    written = [
        f"INFO request {i:05d} served in 12ms path=/api/v1/items?page={i} " + "x" * 40
        for i in range(400)
    ]
    log.write("\n".join(written))
    interaction = await discord_fake.slash(ALICE, OPS, "logs", service="nova", tail=1000)
    answer = await eventually(lambda: discord_fake.answer_message(interaction))
    [file] = answer.files
    content = file.content.decode()
    assert len(file.content) >= 40_000 and written[0] in content and written[-1] in content
    assert file.filename == "nova-logs.txt"
    embed = answer.embeds[0]
    assert written[-1] in embed["description"] and written[0] not in embed["description"]
    assert "all of it: nova-logs.txt" in embed["footer"]["text"]
    assert len(embed["description"]) <= 4096 and len(answer.shown) <= 6000


async def test_slash_commands_are_synced_to_the_guild_only_when_they_changed(
    bot_config: BotConfig, discord_fake: FakeDiscord
) -> None:
    async with running(bot_config):
        pass
    assert discord_fake.command_syncs == 1
    names = [c["name"] for c in discord_fake.command("backup")["options"]]
    assert names == ["create", "list", "restore"]
    marker = Path(bot_config.state_dir) / COMMANDS_MARKER
    assert marker.is_file()
    async with running(bot_config):  # a restart with the same definitions: no sync
        pass
    assert discord_fake.command_syncs == 1
    marker.write_text("an older set of commands\n")
    async with running(bot_config):
        pass
    assert discord_fake.command_syncs == 2
    puts = discord_fake.calls_to("PUT /applications/{application_id}/guilds/{guild_id}/commands")
    assert [c.status for c in puts] == [200, 200]


@pytest.fixture
async def no_content_intent() -> FakeDiscord:
    fake = seed(await FakeDiscord(content_intent_allowed=False).start())
    yield fake
    await fake.stop()


async def test_without_the_content_intent_prefix_commands_are_off_and_the_rest_works(
    bot_config: BotConfig, no_content_intent: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    fake = no_content_intent
    section = bot_config.discord.model_copy(
        update={"api_url": fake.api_url, "gateway_url": fake.gateway_url}
    )
    config = bot_config.model_copy(update={"discord": section})
    with caplog.at_level(logging.WARNING, logger="bot.discord.adapter"):
        async with running(config) as bot:
            assert PREFIX_OFF in caplog.text  # said at start
            status = bot.adapter.status()
            assert status.ready and "prefix commands are off" in status.detail
            assert all(not int(i["intents"]) & CONTENT_INTENT for i in fake.identifies)
            typed = await fake.say(OPS, ALICE, "!health nova")
            mentioned = await fake.say(OPS, ALICE, f"<@{BOT_ID}> health nova")
            [reply] = await eventually(lambda: fake.replies_to(mentioned.id))
            interaction = await fake.slash(ALICE, OPS, "health", service="nova")
            answer = await eventually(lambda: fake.answer_message(interaction))
            await bot.idle()
    assert "nova: " in reply.shown and "nova: " in answer.shown  # both: nova's health
    assert fake.replies_to(typed.id) == []  # Discord blanked its content
    entries = await audit_log(config)
    assert [e["command"] for e in entries] == ["health nova", "health nova"]
    assert not answer.flags & EPHEMERAL
