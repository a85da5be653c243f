"""Replies as Block Kit messages within Slack's limits; what does not fit goes up as a file.

A header (the title, tone as an emoji), the lines as text sections, a table in code blocks,
fields as section fields, actions as buttons whose value is the command they run. Slack's
limits (slack-sdk's validators): section text 3000 characters, 10 fields of 2000 per section,
header 150 (plain text), 25 buttons per actions block with text 75 and value 2000, 50 blocks per
message; messages of about 13,000 characters across their blocks have been refused
(`msg_blocks_too_long`), so a message is kept under `MAX_MESSAGE` in all. What is cut shows as
its newest lines, and the whole goes up as a file (`files_upload_v2`).

Text is Slack mrkdwn: `&`, `<` and `>` are escaped, users become `<@U…>` mentions (other
platforms' users stay `PLATFORM:ID`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.render.fitting import Budget, as_file, fit
from commands.core.formatting import truncate
from commands.core.models import (
    MENTION,
    Action,
    ActionStyle,
    Attachment,
    Platform,
    Reply,
    ReplyField,
    Table,
    Tone,
    User,
)

MAX_SECTION = 3000
MAX_FIELD = 2000
FIELDS_PER_SECTION = 10
MAX_HEADER = 150
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
BUTTONS_PER_BLOCK = 25
MAX_BLOCKS = 50
MAX_MESSAGE = 11_000  # characters across all blocks, well below where Slack refuses
MAX_FALLBACK = 3000  # the notification text
ACTION_PREFIX = "holmbot:"  # action ids are `holmbot:0`, `holmbot:1`... (unique per message)


@dataclass(frozen=True)
class Tier:
    """What a message's content may take: its lines and table, and its fields."""

    budget: Budget
    field_chars: int  # per field value
    max_fields: int


# tried in order until the whole message fits
TIERS = (
    Tier(Budget(max_lines=60, max_chars=6000), field_chars=1900, max_fields=30),
    Tier(Budget(max_lines=30, max_chars=3000), field_chars=500, max_fields=20),
    Tier(Budget(max_lines=10, max_chars=1000), field_chars=150, max_fields=10),
)
MARKS = {
    Tone.INFO: "",
    Tone.SUCCESS: ":white_check_mark: ",
    Tone.WARNING: ":warning: ",
    Tone.ERROR: ":x: ",
}

Block = dict[str, Any]


@dataclass(frozen=True)
class Rendered:
    """One Slack message: blocks, the notification text, and a file to upload with it."""

    text: str
    blocks: list[Block]
    file: Attachment | None = None
    notes: tuple[str, ...] = field(default=())  # what was cut, for logs and tests

    def message(self) -> dict[str, Any]:
        """Arguments for `chat.postMessage`, `chat.update`, `chat.postEphemeral` or an ack."""
        return {"text": self.text, "blocks": self.blocks}


def escape(text: str) -> str:
    """Text safe inside mrkdwn: Slack's three control characters escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_mention(user: User) -> str:
    """`<@U1>` for a Slack user; another platform's user as escaped `PLATFORM:ID`."""
    return f"<@{user.id}>" if user.platform is Platform.SLACK else escape(user.key)


def mrkdwn(text: str) -> str:
    """Reply text as mrkdwn: escaped, with the layer's mention tokens as Slack mentions."""
    parts: list[str] = []
    position = 0
    for match in MENTION.finditer(text):
        parts.append(escape(text[position : match.start()]))
        parts.append(slack_mention(User(platform=Platform(match[1]), id=match[2])))
        position = match.end()
    parts.append(escape(text[position:]))
    return "".join(parts)


def _chunks(lines: list[str], limit: int) -> list[str]:
    """Lines joined into texts of at most `limit` characters (a longer line is cut)."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        line = truncate(line, limit)
        if current and size + len(line) + 1 > limit:
            chunks.append("\n".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line) + 1
    if current:
        chunks.append("\n".join(current))
    return chunks


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, MAX_SECTION)}}


def context(*texts: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": t} for t in texts[:10]]}


def title_block(reply: Reply) -> Block:
    """A header for a plain title; a bold section for a long one or one with mentions."""
    title = MARKS[reply.tone] + reply.title
    if len(title) <= MAX_HEADER and not MENTION.search(title):
        return {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": True}}
    return section(f"*{mrkdwn(title)}*")


def text_sections(lines: list[str]) -> list[Block]:
    return [section(chunk) for chunk in _chunks([mrkdwn(line) for line in lines], MAX_SECTION)]


def code_sections(lines: list[str]) -> list[Block]:
    """Monospaced lines in code blocks; a ``` inside cannot end one early."""
    safe = [escape(line).replace("```", "``\u200b`") for line in lines]
    return [section(f"```\n{chunk}\n```") for chunk in _chunks(safe, MAX_SECTION - 8)]


def field_sections(fields: list[ReplyField]) -> list[Block]:
    texts = [truncate(f"*{mrkdwn(item.name)}*\n{mrkdwn(item.value)}", MAX_FIELD) for item in fields]
    return [
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": t} for t in texts[i : i + FIELDS_PER_SECTION]],
        }
        for i in range(0, len(texts), FIELDS_PER_SECTION)
    ]


def button(index: int, action: Action) -> Block:
    element: Block = {
        "type": "button",
        "action_id": f"{ACTION_PREFIX}{index}",
        "text": {"type": "plain_text", "text": truncate(action.label, MAX_BUTTON_TEXT)},
        "value": action.command[:MAX_BUTTON_VALUE],
    }
    if action.style is not ActionStyle.DEFAULT:
        element["style"] = str(action.style)
    return element


def action_blocks(actions: list[Action]) -> list[Block]:
    buttons = [button(i, a) for i, a in enumerate(actions)]
    return [
        {"type": "actions", "elements": buttons[i : i + BUTTONS_PER_BLOCK]}
        for i in range(0, len(buttons), BUTTONS_PER_BLOCK)
    ]


def size(blocks: list[Block]) -> int:
    """Characters of text across the blocks, as Slack counts toward its total."""

    def texts(node: Any) -> int:
        if isinstance(node, dict):
            return sum(
                len(v) if k == "text" and isinstance(v, str) else texts(v) for k, v in node.items()
            )
        if isinstance(node, list):
            return sum(texts(item) for item in node)
        return 0

    return texts(blocks)


def render(reply: Reply, *, files: bool = True, extra: list[Block] | None = None) -> Rendered:
    """`reply` as one message; `extra` blocks (e.g. progress) go after its content.

    `files`: whether a file can go with the message (not for an ephemeral one): when not,
    the notes say how much is not shown. The title, the notes, `extra` and the buttons always
    show; the content is cut, tier by tier, until the message is within Slack's limits."""
    for tier in TIERS:
        head, body, tail, rendered = _render(reply, tier, files=files, extra=extra or [])
        if _fits([*head, *body, *tail]):
            return rendered
    while body and not _fits([*head, *body, *tail]):
        body.pop()
    return Rendered(rendered.text, [*head, *body, *tail], rendered.file, rendered.notes)


def _fits(blocks: list[Block]) -> bool:
    return len(blocks) <= MAX_BLOCKS and size(blocks) <= MAX_MESSAGE


def _render(
    reply: Reply, tier: Tier, *, files: bool, extra: list[Block]
) -> tuple[list[Block], list[Block], list[Block], Rendered]:
    """The title, the content and the tail (notes, `extra`, buttons) of one tier's message."""
    fitted = fit(reply, tier.budget)
    body = text_sections(fitted.lines)
    if reply.table is not None:
        shown = Table(columns=reply.table.columns, rows=fitted.table_rows)
        body.extend(code_sections(shown.text_lines()))
    fields = [
        ReplyField(name=truncate(f.name, 100), value=truncate(f.value, tier.field_chars))
        for f in reply.fields[: tier.max_fields]
    ]
    body.extend(field_sections(fields))
    fields_cut = len(reply.fields) - sum(
        (f.name, f.value) == (g.name, g.value) for f, g in zip(fields, reply.fields, strict=False)
    )
    file = (fitted.file or (as_file(reply) if fields_cut else None)) if files else None
    notes: list[str] = []
    if fields_cut:
        notes.append(f"{fields_cut} fields cut or left out")
    if fitted.cut:
        notes.append(f"{fitted.cut} lines not shown" if file is None else "the newest lines shown")
    if file is not None and notes:
        whole = file.line_count
        notes.append(f"all {whole} lines are in {file.filename}, uploaded in this message's thread")
    tail = [context(escape("; ".join(notes)))] if notes else []
    tail.extend([*extra, *action_blocks(reply.actions)])
    lead = [reply.title, *fitted.lines[:3]]
    text = truncate(mrkdwn(MARKS[reply.tone] + "\n".join(lead)), MAX_FALLBACK)
    head = [title_block(reply)]
    rendered = Rendered(text=text, blocks=[*head, *body, *tail], file=file, notes=tuple(notes))
    return head, body, tail, rendered
