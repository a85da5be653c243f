"""The typed values the command layer speaks: invocations in, replies and progress out.

No platform or rendering code lives here; adapters turn these into Slack blocks,
Discord embeds or terminal text.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MENTION = re.compile(r"<@(slack|discord|console):([^<>\s]+)>")


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
    thread: str | None = None  # the thread the command came from, where the platform has them
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


def mention(user_key: str) -> str:
    """A user (`PLATFORM:ID`) inside reply text, as a value renderers resolve: `<@U1>` on
    Slack, `<@1234>` on Discord, `console:alice` in the terminal (`render_mentions`)."""
    return f"<@{user_key}>" if MENTION.fullmatch(f"<@{user_key}>") else user_key


def render_mentions(text: str, render: Callable[[User], str]) -> str:
    """Replace every mention in `text` with what `render` makes of its user."""
    return MENTION.sub(lambda match: render(User(platform=Platform(match[1]), id=match[2])), text)


def plain_mention(user: User) -> str:
    """A mention as plain text, `PLATFORM:ID`: for terminals and for other platforms' users."""
    return user.key


class ActionStyle(StrEnum):
    DEFAULT = "default"
    PRIMARY = "primary"
    DANGER = "danger"


class Action(BaseModel):
    """Something the reader can do next: a button on Slack and Discord, a command to type in
    the terminal. A click comes back as an ordinary invocation of `command`."""

    model_config = ConfigDict(frozen=True)

    label: str
    command: str  # e.g. `approve k3x9`, `rollback nova 7`, `logs nova --previous`
    style: ActionStyle = ActionStyle.DEFAULT


class ReplyField(BaseModel):
    name: str
    value: str


class Attachment(BaseModel):
    """The whole of a long output (a log, the audit log), for renderers to post as a file
    when it does not fit their platform's message."""

    filename: str
    content: bytes  # UTF-8 text (a str given is encoded): sent as it is, never copied again

    @property
    def line_count(self) -> int:
        return self.content.count(b"\n")


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
    """What the user sees in answer to a command: the whole content, with users as
    `mention`s. Each renderer decides what fits its platform and what goes into a file.
    `private`: only the asker should see it (a refusal, a vote that does not count).
    `omitted_lines`: older lines left out of `lines` that only the attachment holds."""

    title: str
    tone: Tone = Tone.INFO
    lines: list[str] = Field(default_factory=list)
    omitted_lines: int = 0
    table: Table | None = None
    fields: list[ReplyField] = Field(default_factory=list)
    attachment: Attachment | None = None
    actions: list[Action] = Field(default_factory=list)
    private: bool = False

    def with_mentions(self, render: Callable[[User], str]) -> Reply:
        """A copy with every mention in its texts rendered by `render`."""

        def text(value: str) -> str:
            return render_mentions(value, render)

        table = self.table
        if table is not None:
            rows = [[text(cell) for cell in row] for row in table.rows]
            table = table.model_copy(update={"rows": rows})
        return self.model_copy(
            update={
                "title": text(self.title),
                "lines": [text(line) for line in self.lines],
                "table": table,
                "fields": [
                    f.model_copy(update={"name": text(f.name), "value": text(f.value)})
                    for f in self.fields
                ],
            }
        )

    @property
    def text(self) -> str:
        """Plain text: title, lines, the table, then `name: value` fields; users as
        `PLATFORM:ID`."""
        table = self.table.text_lines() if self.table else []
        parts = [self.title, *self.lines, *table, *(f"{f.name}: {f.value}" for f in self.fields)]
        return render_mentions("\n".join(parts), plain_mention)


class RollbackStarted(BaseModel):
    """A rollback trigger fired and the rollout is being undone: kept with the operation, so a
    restart finishes the rollback rather than mistaking it for the rollout."""

    revision: int  # rolling back to this revision
    from_revision: int  # the revision being left; still current if the undo was not written
    rule: str
    detail: str
    reason: str | None = None


class Phase(StrEnum):
    """Where a tracked operation is, for a progress bar."""

    WAITING = "waiting"  # the change is not yet seen by the controller (or the backup queued)
    PROGRESSING = "progressing"  # new pods are replacing the old ones
    VERIFYING = "verifying"  # all updated; availability or the rollback triggers are checked
    ROLLING_BACK = "rolling back"
    DONE = "done"


class ProgressUpdate(BaseModel):
    """A step of a tracked operation, with kubectl's rollout-status meaning for rollouts.
    `seq` numbers the steps of one operation from 1, so a renderer can drop stale ones."""

    operation_id: str
    message: str
    service: str | None = None
    phase: Phase = Phase.PROGRESSING
    seq: int = 0
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
    service: str | None = None
    seq: int = 0
    message: str
    duration_seconds: float
    reason: str | None = None  # ProgressDeadlineExceeded, ImagePullBackOff, timeout ...
    trigger: str | None = None  # the rollback trigger that fired, if any
    rolled_back_to: int | None = None  # the revision an automatic rollback went back to
    rollback_proposed: int | None = None  # a trigger fired; rolling back to this needs approval

    @property
    def phase(self) -> Phase:
        return Phase.DONE

    def reply(self) -> Reply:
        """The result as a reply; a failed rollout offers its rollback and its logs."""
        actions = []
        if not self.ok and self.service is not None and self.reason != "cancelled":
            if self.rolled_back_to is None and self.rollback_proposed is None:
                command = f"rollback {self.service}"
                actions.append(Action(label="Roll back", command=command, style="danger"))
            actions.append(Action(label="Logs", command=f"logs {self.service} --previous"))
        tone = Tone.SUCCESS if self.ok else Tone.ERROR
        return Reply(title=self.message, tone=tone, actions=actions)


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


class NoticeKind(StrEnum):
    """What a notice is about, so an adapter knows whether to post or to edit."""

    APPROVED_RUNNING = "approved-running"  # an approved request runs: post its outcome
    REQUEST_VOTED = "request-voted"  # a vote counted, more needed: edit the request message
    REQUEST_DECIDED = "request-decided"  # approved, denied or cancelled: edit the request message
    REQUEST_EXPIRED = "request-expired"  # edit the request message
    ROLLBACK_PROPOSED = "rollback-proposed"  # a new request the bot asks: post it
    OPERATION_RESUMED = "operation-resumed"  # picked up after a restart: edit its progress message


class MessageRef(BaseModel):
    """A message an adapter posted: where it is, so it can be edited or found again."""

    model_config = ConfigDict(frozen=True)

    platform: Platform
    channel: str
    message_id: str
    thread: str | None = None


@dataclass
class Notice:
    """Something the bot says on its own in a channel, for the adapter of `platform`.

    `outcome` is what to show (with progress for a running operation); `refs` are the
    messages it concerns (the request message to edit, the progress message of a resumed
    operation): none means post a new message in `channel` (in `thread`, if given).
    """

    kind: NoticeKind
    platform: Platform
    channel: str
    outcome: Outcome
    refs: list[MessageRef] = field(default_factory=list)
    thread: str | None = None
    request_id: str | None = None
    operation_id: str | None = None
    requester: str | None = None  # `PLATFORM:ID` of who asked, to mention with a result
