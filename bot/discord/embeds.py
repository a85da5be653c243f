"""Replies as Discord messages: one embed within Discord's limits, buttons, and a file for
what does not fit.

Colour by tone, the title (in the description when it names a user: embed titles render no
mentions), the lines (Markdown escaped, users as `<@id>` mentions) and a table (in a code block)
in the description, fields as embed fields, actions as buttons, the requester's mention
as content. Discord's limits: content 2000, title 256, description 4096, 25 fields of name 256
and value 1024, footer 2048, and 6000 characters over the whole embed. What is cut shows as its
newest lines, and the whole goes up as a file (within the attachment size limit, 10 MiB unless
the interaction says otherwise), named in the footer.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import discord
from discord.utils import escape_markdown

from bot.discord.buttons import view_of
from bot.discord.identity import mention
from bot.render.fitting import Budget, as_file, fit
from commands.core.models import (
    MENTION,
    Action,
    Attachment,
    Platform,
    Reply,
    Table,
    Tone,
    User,
    plain_mention,
    render_mentions,
)

MAX_CONTENT = 2000
MAX_TITLE = 256
MAX_DESCRIPTION = 4096
MAX_FIELDS = 25
MAX_FIELD_NAME = 256
MAX_FIELD_VALUE = 1024
MAX_EMBED = 6000
MAX_NOTE = 300  # the footer: what was cut and where the whole is
INLINE_UP_TO = 40  # field values this short sit side by side
DEFAULT_FILE_LIMIT = 10 * 1024 * 1024  # bytes per file since 2025-01, unless told otherwise
# what the lines and table may take of the description, tried in order until it fits
BUDGETS = (
    Budget(max_lines=40, max_chars=3000),
    Budget(max_lines=20, max_chars=1500),
    Budget(max_lines=5, max_chars=500),
)
COLOURS = {
    Tone.INFO: discord.Colour.blurple(),
    Tone.SUCCESS: discord.Colour.green(),
    Tone.WARNING: discord.Colour.gold(),
    Tone.ERROR: discord.Colour.red(),
}
MARKS = {Tone.INFO: "", Tone.SUCCESS: "✅ ", Tone.WARNING: "⚠️ ", Tone.ERROR: "❌ "}
NO_MENTIONS = discord.AllowedMentions.none()
USER_MENTIONS = discord.AllowedMentions(everyone=False, roles=False, users=True)


@dataclass(frozen=True)
class Rendered:
    """One Discord message: an embed, optional content (a mention), buttons and a file."""

    embed: discord.Embed
    content: str | None = None
    actions: tuple[Action, ...] = ()
    file: Attachment | None = None

    def files(self) -> list[discord.File]:
        """The attachment as a fresh file object (each send consumes one)."""
        if self.file is None:
            return []
        return [discord.File(io.BytesIO(self.file.content), filename=self.file.filename)]

    def send_kwargs(self) -> dict[str, Any]:
        """Arguments for `send`, `reply`, an interaction response or a followup."""
        kwargs: dict[str, Any] = {
            "embed": self.embed,
            "allowed_mentions": USER_MENTIONS if self.content else NO_MENTIONS,
        }
        if self.content:
            kwargs["content"] = self.content
        if (view := view_of(self.actions)) is not None:
            kwargs["view"] = view
        if self.file is not None:
            kwargs["files"] = self.files()
        return kwargs

    def edit_kwargs(self) -> dict[str, Any]:
        """Arguments for `edit`: content, embed and buttons replaced (no actions: no buttons);
        the file only when there is one. An edit never pings anyone again."""
        kwargs: dict[str, Any] = {
            "content": self.content,
            "embed": self.embed,
            "view": view_of(self.actions),
            "allowed_mentions": NO_MENTIONS,
        }
        if self.file is not None:
            kwargs["attachments"] = self.files()
        return kwargs


def markdown(value: str) -> str:
    """Plain text as Discord Markdown: escaped, with users as mentions."""
    parts, at = [], 0
    for match in MENTION.finditer(value):
        parts.append(escape_markdown(value[at : match.start()]))
        user = User(platform=Platform(match[1]), id=match[2])
        parts.append(
            mention(user)
            if user.platform is Platform.DISCORD
            else escape_markdown(plain_mention(user))
        )
        at = match.end()
    parts.append(escape_markdown(value[at:]))
    return "".join(parts)


def code_block(lines: list[str]) -> str:
    """Lines monospaced; a ``` inside cannot end the block early."""
    body = "\n".join(lines).replace("```", "``\u200b`")
    return f"```\n{body}\n```"


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render(
    reply: Reply, *, content: str | None = None, file_limit: int = DEFAULT_FILE_LIMIT
) -> Rendered:
    """`reply` as one message; `content` (e.g. a mention of the requester) goes above it."""
    title = MARKS[reply.tone] + markdown(reply.title)
    # an embed title renders no mentions: a title with one (or too long) leads the description
    in_description = len(title) > MAX_TITLE or MENTION.search(reply.title) is not None
    description, file, cut = _description(reply, f"**{title}**" if in_description else None)
    notes = [f"{cut} more lines in the file"] if cut else []
    embed = discord.Embed(
        title=None if in_description else title,
        description=description or None,
        colour=COLOURS[reply.tone],
    )
    room = MAX_EMBED - len(embed.title or "") - len(description) - MAX_NOTE
    left_out = 0
    for item in reply.fields:
        whole = (markdown(item.name) or "\u200b", markdown(item.value) or "\u200b")
        name, value = clip(whole[0], MAX_FIELD_NAME), clip(whole[1], MAX_FIELD_VALUE)
        if len(embed.fields) == MAX_FIELDS or len(name) + len(value) > room:
            left_out += 1
            continue
        left_out += (name, value) != whole  # shown, but cut
        embed.add_field(name=name, value=value, inline=len(value) <= INLINE_UP_TO)
        room -= len(name) + len(value)
    if left_out:
        notes.append(f"{left_out} fields cut or left out")
        file = file or reply.attachment or as_file(reply)
    if file is not None:
        file, kept = within(file, file_limit)
        notes.insert(0, f"all of it: {file.filename} ({file.line_count} lines)")
        notes.extend([kept] if kept else [])
    if notes:
        embed.set_footer(text=clip("; ".join(notes), MAX_NOTE))
    return Rendered(
        embed=embed,
        content=clip(content, MAX_CONTENT) if content else None,
        actions=tuple(reply.actions),
        file=file,
    )


def _description(reply: Reply, title: str | None) -> tuple[str, Attachment | None, int]:
    """The description (within 4096; `title` first, if given), the file to attach if something
    was cut, and how many lines or rows were cut: the largest budget whose description fits."""
    for budget in BUDGETS:
        fitted = fit(reply, budget)
        parts = [title] if title else []
        parts.extend(markdown(line) for line in fitted.lines)
        if reply.table is not None:
            rows = [[render_mentions(c, plain_mention) for c in row] for row in fitted.table_rows]
            shown = Table(columns=reply.table.columns, rows=rows)
            parts.append(code_block(shown.text_lines()))
        description = "\n".join(parts)
        if len(description) <= MAX_DESCRIPTION:
            break
    return clip(description, MAX_DESCRIPTION), fitted.file, fitted.cut


def within(file: Attachment, limit: int) -> tuple[Attachment, str | None]:
    """The file, or its newest part when it is over Discord's size limit."""
    data = file.content
    if len(data) <= limit:
        return file, None
    tail = data[len(data) - limit + 1024 :]
    tail = tail[tail.find(b"\n") + 1 :]  # whole lines (a newline is never inside a character)
    note = f"the file holds the last {len(tail) // 1024} KiB (Discord's limit)"
    return file.model_copy(update={"content": tail}), note


def short(reply: Reply) -> str:
    """A private reply as short plain text, for where Discord has no ephemeral messages:
    the title and its first lines (a refusal's usage)."""
    lines = [
        MARKS[reply.tone] + markdown(reply.title),
        *("`" + line.replace("`", "'") + "`" for line in reply.lines[:3]),
    ]
    return clip("\n".join(lines), 400)
