"""The typed values the command layer speaks: invocations in, replies and progress out.

No platform or rendering code lives here; adapters turn these into Slack blocks,
Discord embeds or terminal text.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Platform(StrEnum):
    SLACK = "slack"
    DISCORD = "discord"
    CONSOLE = "console"


class User(BaseModel):
    """Who is asking: a platform user and the platform groups/roles they belong to."""

    model_config = ConfigDict(frozen=True)

    platform: Platform
    id: str
    display_name: str | None = None
    groups: tuple[str, ...] = ()  # Slack user group ids, Discord guild role ids

    @property
    def key(self) -> str:
        """`PLATFORM:ID`, the form users are written in config and the audit log."""
        return f"{self.platform}:{self.id}"

    @classmethod
    def parse(cls, key: str, groups: tuple[str, ...] = ()) -> User:
        """`slack:U024BE7LH` -> User; raises ValueError for anything else."""
        platform, sep, user_id = key.partition(":")
        if not sep or not user_id or platform not in {p.value for p in Platform}:
            raise ValueError(f"users are written PLATFORM:ID (slack, discord, console): {key!r}")
        return cls(platform=Platform(platform), id=user_id, groups=groups)


class Invocation(BaseModel):
    """One command as typed by one user in one channel."""

    model_config = ConfigDict(frozen=True)

    user: User
    channel: str
    text: str
    delivery_id: str | None = None  # the platform's id for this delivery, for de-duplication
    received_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @field_validator("text")
    @classmethod
    def _encodable(cls, text: str) -> str:
        """Bytes a terminal could not decode (surrogates) become U+FFFD, so the text can
        be parsed, shown and written down."""
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")

    @property
    def platform(self) -> Platform:
        return self.user.platform


class Tone(StrEnum):
    """How a reply should look: adapters pick colours or emoji from it."""

    INFO = "info"
    SUCCESS = "success"
    WARNING = "warning"
    ERROR = "error"


class ReplyField(BaseModel):
    name: str
    value: str


class Attachment(BaseModel):
    """Output too long for a chat message, posted as a file."""

    filename: str
    content: str


class Table(BaseModel):
    """Rows under column headings; renderers show it monospaced (code block, embed field...)."""

    columns: list[str]
    rows: list[list[str]] = Field(default_factory=list)

    @field_validator("rows")
    @classmethod
    def _one_line_cells(cls, rows: list[list[str]]) -> list[list[str]]:
        """Newlines and terminal escapes in a cell (an error text, a typed command) become
        spaces, so that one cell cannot break the table or colour the terminal."""
        return [[_CONTROL.sub(" ", cell) for cell in row] for row in rows]

    @model_validator(mode="after")
    def _rows_match_columns(self) -> Table:
        if any(len(row) != len(self.columns) for row in self.rows):
            raise ValueError(f"every row needs {len(self.columns)} cells")
        return self

    def text_lines(self) -> list[str]:
        """The table as aligned plain-text lines, headings first."""
        widths = [
            max(len(cell) for cell in column)
            for column in zip(self.columns, *self.rows, strict=True)
        ]
        return [
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in (self.columns, *self.rows)
        ]


class Reply(BaseModel):
    """What the user sees in answer to a command."""

    title: str
    tone: Tone = Tone.INFO
    lines: list[str] = Field(default_factory=list)
    table: Table | None = None
    fields: list[ReplyField] = Field(default_factory=list)
    attachment: Attachment | None = None

    @property
    def text(self) -> str:
        """Plain text: title, lines, the table, then `name: value` fields."""
        table = self.table.text_lines() if self.table else []
        parts = [self.title, *self.lines, *table, *(f"{f.name}: {f.value}" for f in self.fields)]
        return "\n".join(parts)


class RollbackStarted(BaseModel):
    """A rollback trigger fired and the rollout is being undone: kept with the operation, so a
    restart finishes the rollback rather than mistaking it for the rollout."""

    revision: int  # rolling back to this revision
    from_revision: int  # the revision being left; still current if the undo was not written
    rule: str
    detail: str
    reason: str | None = None


class ProgressUpdate(BaseModel):
    """A step of a tracked operation, with kubectl's rollout-status meaning for rollouts."""

    operation_id: str
    message: str
    desired: int | None = None
    updated: int | None = None
    ready: int | None = None
    available: int | None = None
    old_pending: int | None = None
    problems: list[str] = Field(default_factory=list)  # e.g. "nova-7d9-abcde: CrashLoopBackOff"
    rollback: RollbackStarted | None = None  # on the update that starts an automatic rollback


class FinalResult(BaseModel):
    """How a tracked operation ended."""

    operation_id: str
    ok: bool
    message: str
    duration_seconds: float
    reason: str | None = None  # ProgressDeadlineExceeded, ImagePullBackOff, timeout ...
    trigger: str | None = None  # the rollback trigger that fired, if any
    rolled_back_to: int | None = None  # the revision an automatic rollback went back to
    rollback_proposed: int | None = None  # a trigger fired; rolling back to this needs approval

    def reply(self) -> Reply:
        return Reply(title=self.message, tone=Tone.SUCCESS if self.ok else Tone.ERROR)


Progress = ProgressUpdate | FinalResult


@dataclass
class Outcome:
    """A command's answer: a reply now and, for long operations, progress until a final result.

    `operation_id` names a tracked operation, so an adapter can say where its progress
    message lives (`CommandLayer.bind_message`); `request_id` names an approval request
    the reply asks for, so an adapter can turn reactions or buttons on it into votes.
    `duplicate` marks a repeated delivery: adapters post nothing for it. `refused` says
    nothing ran because it may not or need not (an unknown service, a busy one, no change).
    `failed` says the command could not do its job: Kubernetes or a service it needs answered
    with an error. A reply that reports a sick service is neither: the command did its job.
    """

    reply: Reply
    progress: AsyncIterator[Progress] | None = None
    operation_id: str | None = None
    request_id: str | None = None
    duplicate: bool = False
    refused: bool = False
    failed: bool = False


@dataclass
class Notice:
    """Something the bot says on its own in a channel: an approved command running, an
    expired request, a rollout picked up again after a restart."""

    platform: Platform
    channel: str
    outcome: Outcome
    message_ref: str | None = None  # the message to edit, when one exists already
