"""The audit log for people: `/audit [N]` as a chat reply, and `holmbot audit` on a terminal.

`holmbot audit [--config FILE] [--since DUR] [--user U] [--limit N] [--format table|json|csv]`
reads the state file named by the config (read-only) and prints the entries oldest first.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from commands.core.formatting import human_seconds, truncate
from commands.core.models import Attachment, Reply, Table
from commands.core.parser import duration_seconds
from commands.store.state import AuditEntry

FORMATS = ("table", "json", "csv")
NOTE_CHARS = 60
COMMAND_CHARS = 40
FIELDS = (
    "id",
    "at",
    "platform",
    "channel",
    "user",
    "command",
    "action",
    "service",
    "approvers",
    "outcome",
    "duration_ms",
    "error",
    "detail",
    "request_id",
)


def _took(entry: AuditEntry) -> str:
    return "-" if entry.duration_ms is None else human_seconds(entry.duration_ms / 1000)


def _note(entry: AuditEntry) -> str:
    return " ".join(filter(None, [entry.error, entry.detail]))


def audit_table(entries: Sequence[AuditEntry], *, wide: bool = False) -> Table:
    """Entries as table rows; `wide` adds the date, platform and channel and keeps full text."""
    if wide:
        columns = ["TIME", "PLATFORM", "CHANNEL", "USER", "COMMAND", "OUTCOME", "APPROVERS"]
        columns += ["TOOK", "NOTE"]
        rows = [
            [
                f"{e.at.astimezone(UTC):%Y-%m-%d %H:%M:%S}",
                e.platform,
                e.channel,
                e.user,
                e.command,
                e.outcome,
                ",".join(e.approvers) or "-",
                _took(e),
                _note(e) or "-",
            ]
            for e in entries
        ]
        return Table(columns=columns, rows=rows)
    columns = ["WHEN (UTC)", "USER", "COMMAND", "OUTCOME", "APPROVERS", "TOOK", "NOTE"]
    rows = [
        [
            f"{e.at.astimezone(UTC):%m-%d %H:%M:%S}",
            e.user,
            truncate(e.command, COMMAND_CHARS),
            e.outcome,
            ",".join(e.approvers) or "-",
            _took(e),
            truncate(_note(e), NOTE_CHARS) or "-",
        ]
        for e in entries
    ]
    return Table(columns=columns, rows=rows)


def audit_reply(entries: Sequence[AuditEntry]) -> Reply:
    """`/audit [N]`: the entries (oldest first) as a table, and every column as a file for
    renderers that cannot show them all."""
    if not entries:
        return Reply(title="the audit log is empty")
    count = len(entries)
    return Reply(
        title=f"audit log: last {count} entr{'y' if count == 1 else 'ies'}",
        table=audit_table(entries),
        attachment=Attachment(filename="audit.txt", content=to_table(entries)),
    )


def to_table(entries: Sequence[AuditEntry]) -> str:
    return "\n".join(audit_table(entries, wide=True).text_lines()) + "\n"


def _record(entry: AuditEntry) -> dict[str, object]:
    record = entry.model_dump(mode="json")
    record["at"] = f"{entry.at.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%f}Z"
    return {name: record[name] for name in FIELDS}


def to_json(entries: Sequence[AuditEntry]) -> str:
    """A JSON array of entries, every field, times in UTC."""
    return json.dumps([_record(entry) for entry in entries], indent=2) + "\n"


def to_csv(entries: Sequence[AuditEntry]) -> str:
    """CSV with a header row; approvers joined with spaces."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for entry in entries:
        record = _record(entry)
        record["approvers"] = " ".join(entry.approvers)
        writer.writerow(record)
    return out.getvalue()


def render(entries: Sequence[AuditEntry], fmt: str) -> str:
    return {"table": to_table, "json": to_json, "csv": to_csv}[fmt](entries)


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """`30m`, `2h`, `7d` ago, or an ISO date/time (UTC unless it says otherwise)."""
    now = now or datetime.now(UTC)
    try:
        seconds = duration_seconds(value)
    except ValueError:
        pass
    else:
        try:
            return now - timedelta(seconds=seconds)
        except OverflowError:
            return datetime.min.replace(tzinfo=UTC)  # further back than anything written
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is neither a duration (30m, 2h, 7d) nor a date (2025-03-01T12:00)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
