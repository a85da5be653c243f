"""Replies as Discord messages: within Discord's limits, with the rest in a file."""

from __future__ import annotations

import discord

from bot.discord.appcommands import command_line, summary
from bot.discord.client import route
from bot.discord.embeds import MAX_EMBED, render, short
from bot.discord.prefix import command_text
from bot.discord.progress import progress_reply
from bot.render.progress import operation_bar
from commands.core.models import (
    Action,
    Attachment,
    FinalResult,
    Phase,
    ProgressUpdate,
    Reply,
    ReplyField,
    Table,
    Tone,
)
from commands.core.parser import parse_command


def embed_size(embed: discord.Embed) -> int:
    return len(embed)  # discord.py counts title, description, fields, footer and author


def test_a_long_log_shows_its_newest_lines_and_comes_whole_as_a_file() -> None:
    lines = [
        f"2026-01-01T00:00:{i % 60:02d}Z nova-7d9 request {i} served in 12ms" for i in range(800)
    ]
    whole = "\n".join(lines) + "\n"
    reply = Reply(
        title="logs of nova",
        lines=lines,
        attachment=Attachment(filename="nova.log", content=whole),
    )
    rendered = render(reply)
    description = rendered.embed.description or ""
    assert len(description) <= 4096 and embed_size(rendered.embed) <= MAX_EMBED
    assert lines[-1] in description and lines[0] not in description
    assert rendered.file is not None and rendered.file.content == whole.encode()
    assert "all of it: nova.log (800 lines)" in (rendered.embed.footer.text or "")
    [file] = rendered.files()
    assert file.filename == "nova.log" and file.fp.read() == whole.encode()


def test_a_file_over_the_size_limit_keeps_its_newest_part() -> None:
    lines = [f"line {i:06d}" for i in range(20000)]
    content = "".join(f"{line}\n" for line in lines)
    reply = Reply(
        title="logs", lines=lines, attachment=Attachment(filename="big.log", content=content)
    )
    rendered = render(reply, file_limit=64 * 1024)
    assert rendered.file is not None
    kept = rendered.file.content
    assert len(kept) <= 64 * 1024 and kept.endswith(b"line 019999\n")
    assert kept.startswith(b"line ") and b"line 000000" not in kept
    assert "Discord's limit" in (rendered.embed.footer.text or "")


def test_a_reply_whose_lines_all_show_sends_no_file() -> None:
    whole = "a\nb\n"
    reply = Reply(
        title="logs", lines=["a", "b"], attachment=Attachment(filename="x", content=whole)
    )
    rendered = render(reply)
    assert rendered.file is None and "files" not in rendered.send_kwargs()
    assert rendered.embed.footer.text is None


def test_markdown_in_lines_is_shown_as_typed() -> None:
    reply = Reply(title="nova_api *up*", lines=["GET /a_b_c **bold** `tick`"])
    embed = render(reply).embed
    assert embed.title == r"nova\_api \*up\*"
    assert embed.description == r"GET /a\_b\_c \*\*bold\*\* \`tick\`"


def test_tables_go_in_code_blocks_users_are_mentions_and_tone_is_a_colour() -> None:
    reply = Reply(
        title="pending for <@discord:1004>",
        tone=Tone.ERROR,
        lines=["asked by <@discord:1004> and <@slack:UBOB>"],
        table=Table(columns=["ID", "WHO"], rows=[["k3x9", "<@discord:1004>"], ["a```b", "x"]]),
    )
    rendered = render(reply)
    embed = rendered.embed
    assert embed.colour == discord.Colour.red()
    assert embed.title is None  # an embed title would show the mention as typed
    assert (embed.description or "").startswith("**❌ pending for <@1004>**\n")
    description = embed.description or ""
    assert "asked by <@1004> and slack:UBOB" in description
    assert "discord:1004" in description  # in a code block a mention would not render
    block = description[description.index("```") :]
    assert block.startswith("```\nID") and block.endswith("\n```")
    assert block.count("```") == 2  # the cell's ``` cannot end the block
    assert rendered.file is None and rendered.send_kwargs()["allowed_mentions"].users is False


def test_fields_over_discords_limits_are_cut_and_all_of_them_attached() -> None:
    fields = [ReplyField(name=f"field {i}", value="v" * 900) for i in range(30)]
    rendered = render(Reply(title="many", fields=fields))
    embed = rendered.embed
    assert len(embed.fields) <= 25 and embed_size(embed) <= MAX_EMBED
    assert all(len(f.value or "") <= 1024 for f in embed.fields)
    assert rendered.file is not None and b"field 29: " in rendered.file.content
    assert "left out" in (embed.footer.text or "")


def test_a_title_over_256_characters_is_shown_whole_in_the_description() -> None:
    title = "x" * 300
    embed = render(Reply(title=title)).embed
    assert embed.title is None and title in (embed.description or "")


def test_actions_become_buttons_with_the_command_in_the_custom_id() -> None:
    actions = [
        Action(label="Approve", command="approve k3x9", style="primary"),
        Action(label="Deny", command="deny k3x9", style="danger"),
        Action(label="again", command="approve k3x9"),
        Action(label="too long", command="logs " + "n" * 100),
    ]
    view = render(Reply(title="request", actions=actions)).send_kwargs()["view"]
    rows = view.to_components()
    buttons = [(b["custom_id"], b["label"], b["style"]) for row in rows for b in row["components"]]
    assert buttons == [
        ("holmbot:approve k3x9", "Approve", discord.ButtonStyle.primary.value),
        ("holmbot:deny k3x9", "Deny", discord.ButtonStyle.danger.value),
    ]
    assert view.timeout is None and view.is_persistent()
    assert render(Reply(title="decided")).edit_kwargs()["view"] is None  # buttons removed


def test_a_private_reply_to_a_message_is_short_text_with_its_usage() -> None:
    reply = Reply(
        title="deploy: missing SERVICE", tone=Tone.ERROR, lines=["usage: deploy SERVICE [TAG]"]
    )
    assert short(reply) == "❌ deploy: missing SERVICE\n`usage: deploy SERVICE [TAG]`"


def test_slash_options_become_text_the_shared_parser_reads() -> None:
    text = command_line("logs", "nova", tail=50, previous=True, grep="GET /a b", since=None)
    assert text == "logs nova --tail 50 --previous --grep 'GET /a b'"
    command = parse_command(text)
    assert (command.tail, command.previous, command.grep) == (50, True, "GET /a b")
    assert command_line("deploy", "nova", None, container=None) == "deploy nova"
    assert summary("rollback").startswith("Roll back") and len(summary("deploy")) <= 100


def test_message_commands_need_the_prefix_and_a_command_word_or_a_mention() -> None:
    assert command_text("!deploy nova v2", "!", 42) == "deploy nova v2"
    assert command_text("!play some song", "!", 42) is None  # another bot's command
    assert command_text("<@42> health nova", "!", 42) == "health nova"
    assert command_text("<@!42>", "!", 42) == "help"
    assert command_text("!deploy nova", "", 42) is None  # prefix commands off
    assert command_text("deploy nova", "!", 42) is None


def test_metrics_routes_carry_no_ids_tokens_or_emoji() -> None:
    assert route("PATCH", "/channels/1234567/messages/7654321") == (
        "PATCH /channels/{id}/messages/{id}"
    )
    token = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5OnNlY3JldHRva2VuLWxvbmctZW5vdWdo"
    assert route("POST", f"/interactions/1234567/{token}/callback") == (
        "POST /interactions/{id}/{token}/callback"
    )
    assert route("PATCH", f"/webhooks/1234567/{token}/messages/@original") == (
        "PATCH /webhooks/{id}/{token}/messages/@original"
    )
    assert route("PUT", "/channels/1234567/messages/7654321/reactions/%E2%9C%85/@me") == (
        "PUT /channels/{id}/messages/{id}/reactions/{emoji}/@me"
    )


def test_the_progress_bar_counts_updated_available_replicas() -> None:
    update = ProgressUpdate(
        operation_id="op1",
        message="2 of 4 updated",
        service="nova",
        desired=4,
        updated=3,
        available=2,
    )
    assert operation_bar(update) == "▰▰▰▰▰▱▱▱▱▱ 2/4"
    verifying = update.model_copy(update={"phase": Phase.VERIFYING})
    assert operation_bar(verifying).endswith(" 4/4")
    rolling_back = update.model_copy(update={"phase": Phase.ROLLING_BACK, "problems": ["crash"]})
    header = Reply(title="Deploying nova:v2")
    shown = progress_reply(header, rolling_back, 3.0)
    assert shown.tone is Tone.WARNING and shown.title == "Deploying nova:v2"
    assert "⚠ crash" in shown.lines
    final = FinalResult(operation_id="op1", ok=False, message="nova failed", duration_seconds=12.4)
    ended = progress_reply(header, final, 13.0)
    assert ended.tone is Tone.ERROR and ended.lines[:2] == [
        "▱▱▱▱▱▱▱▱▱▱ 0/1  failed after 12s",
        "nova failed",
    ]
