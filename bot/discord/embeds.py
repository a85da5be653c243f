"""Replies as Discord embeds within Discord's limits; what does not fit goes up as a file.

Colour by tone, lines and a table (in a code block) in the description, fields as embed
fields, users as mentions, actions as buttons. Limits: content 2000, title 256, description
4096, 25 fields of name 256 / value 1024, footer 2048, 6000 characters over the whole embed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import discord

from bot.discord.buttons import view_of
from bot.discord.identity import mention
from bot.render.fitting import Budget, fit
from commands.core.models import Action, Attachment, Reply, Table, Tone

MAX_CONTENT = 2000
MAX_TITLE = 256
MAX_DESCRIPTION = 4096
MAX_FIELDS = 25
MAX_FIELD_NAME = 256
MAX_FIELD_VALUE = 1024
MAX_FOOTER = 2048
MAX_EMBED = 6000
DEFAULT_FILE_LIMIT = 10 * 1024 * 1024  # bytes per file since 2025-01, unless told otherwise
# lines and table rows in the description; the rest of the embed's 6000 is for fields
BUDGET = Budget(max_lines=40, max_chars=3000)
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
    notes: tuple[str, ...] = field(default=())  # what was cut, for logs and tests

    def files(self) -> list[discord.File]:
        """The attachment as a fresh file object (one is consumed by each send)."""
        if self.file is None:
            return []
        data = io.BytesIO(self.file.content.encode())
        return [discord.File(data, filename=self.file.filename)]

    def send_kwargs(self) -> dict[str, Any]:
        """Arguments for `send`, `reply` or a followup."""
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
        """Arguments for `edit`: the buttons are replaced (none removes them); a file is
        replaced only when there is one."""
        kwargs: dict[str, Any] = {
            "content": self.content,
            "embed": self.embed,
            "view": view_of(self.actions),
            "allowed_mentions": NO_MENTIONS,
        }
        if self.file is not None:
            kwargs["attachments"] = self.files()
        return kwargs


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
    reply = reply.with_mentions(mention)
    fitted = fit(reply, BUDGET)
    title = MARKS[reply.tone] + reply.title
    parts = [title] if len(title) > MAX_TITLE else []  # a long title is shown in full below
    parts.extend(fitted.lines)
    if reply.table is not None and fitted.table_rows:
        shown = Table(columns=reply.table.columns, rows=fitted.table_rows)
        parts.append(code_block(shown.text_lines()))
    elif reply.table is not None:
        parts.append(code_block(reply.table.text_lines()[:1]))
    description = clip("\n".join(parts), MAX_DESCRIPTION)
    file = fitted.file if fitted.cut or reply.attachment is not None else None
    notes: list[str] = []
    if fitted.cut:
        notes.append(f"{fitted.cut} more lines in the attached file")
    embed = discord.Embed(
        title=clip(title, MAX_TITLE), description=description or None, colour=COLOURS[reply.tone]
    )
    room = MAX_EMBED - len(embed.title or "") - len(description) - 200  # 200: the footer
    left_out = 0
    for item in reply.fields:
        name, value = clip(item.name, MAX_FIELD_NAME), clip(item.value, MAX_FIELD_VALUE)
        if len(embed.fields) == MAX_FIELDS or len(name) + len(value) > room:
            left_out += 1
            continue
        if (name, value) != (item.name, item.value):
            left_out += 1
        embed.add_field(name=name, value=value, inline=len(value) <= 40)
        room -= len(name) + len(value)
    if left_out:
        notes.append(f"{left_out} fields cut or left out: all of them in the attached file")
        file = file or whole_text(reply)
    if file is not None:
        file, cut_note = within(file, file_limit)
        notes.extend([cut_note] if cut_note else [])
        lines = file.content.count("\n")
        notes.insert(0, f"full output: {file.filename} ({lines} lines)")
    if notes:
        embed.set_footer(text=clip("; ".join(notes), 200))
    return Rendered(
        embed=embed,
        content=clip(content, MAX_CONTENT) if content else None,
        actions=tuple(reply.actions),
        file=file,
        notes=tuple(notes),
    )


def whole_text(reply: Reply) -> Attachment:
    """The whole reply as text, for a reply whose fields did not fit."""
    name = "".join(c if c.isalnum() else "-" for c in reply.title.lower())[:40].strip("-")
    return Attachment(filename=f"{name or 'reply'}.txt", content=reply.text + "\n")


def within(file: Attachment, limit: int) -> tuple[Attachment, str | None]:
    """The file, or its newest part when it is over Discord's size limit."""
    data = file.content.encode()
    if len(data) <= limit:
        return file, None
    tail = data[len(data) - limit + 1024 :].decode(errors="ignore")
    tail = tail[tail.find("\n") + 1 :]
    note = f"the file holds the last {len(tail.encode()) // 1024} KiB (Discord's limit)"
    return file.model_copy(update={"content": tail}), note


def short(reply: Reply) -> str:
    """A private reply as short plain text, for where Discord has no ephemeral messages:
    the title and, for a refusal of bad input, its usage lines."""
    reply = reply.with_mentions(mention)
    lines = [MARKS[reply.tone] + reply.title, *(f"`{line}`" for line in reply.lines[:3])]
    return clip("\n".join(lines), 400)
