"""Audit output: the `/audit` reply, and `holmbot audit` as table, JSON and CSV."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.audit_cli import add_audit_arguments, run_audit_cli
from commands.access.approvals import Approvals
from commands.access.policy import AccessConfig, ApprovalRule, Policy
from commands.core.models import Invocation, User
from commands.core.parser import parse_command
from commands.handlers.audit import audit_reply, parse_since, render
from commands.store.state import AuditEntry, AuditOutcome, State
from sandbox.demo_policy import demo_access

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ALICE = User.parse("console:alice")
BOB = User.parse("console:bob")


def entry(minute: int, user: User = ALICE, **fields: object) -> AuditEntry:
    base: dict[str, object] = {
        "at": T0 + timedelta(minutes=minute),
        "action": "deploy",
        "service": "nova",
    }
    invocation = Invocation(user=user, channel="ops", text="deploy nova v2")
    return AuditEntry.of(invocation, **{"outcome": AuditOutcome.OK, **base, **fields})


ENTRIES = [
    entry(0, outcome=AuditOutcome.REFUSED, detail="deploy needs the role deployer or admin"),
    entry(1, outcome=AuditOutcome.OK, approvers=("console:bob", "console:dave"), duration_ms=42000),
    entry(2, BOB, outcome=AuditOutcome.FAILED, duration_ms=800, error="ImagePullBackOff"),
]


def test_reply_is_a_compact_table() -> None:
    reply = audit_reply(ENTRIES)
    assert reply.title == "audit log: last 3 entries"
    assert reply.table.columns == [
        "WHEN (UTC)",
        "USER",
        "COMMAND",
        "OUTCOME",
        "APPROVERS",
        "TOOK",
        "NOTE",
    ]
    assert reply.table.rows[1] == [
        "03-01 12:01:00",
        "console:alice",
        "deploy nova v2",
        "ok",
        "console:bob,console:dave",
        "42s",
        "-",
    ]
    assert reply.table.rows[2][-2:] == ["0.8s", "ImagePullBackOff"]
    assert reply.table.rows[0][-1] == "deploy needs the role deployer or admin"
    assert audit_reply([]).title == "the audit log is empty"
    assert audit_reply(ENTRIES[:1]).title == "audit log: last 1 entry"


def test_the_reply_holds_every_entry_and_the_whole_log_as_a_file() -> None:
    many = [entry(minute) for minute in range(30)]
    reply = audit_reply(many)
    assert len(reply.table.rows) == 30  # the renderer decides how many fit its platform
    assert reply.table.rows[-1][0] == "03-01 12:29:00"
    assert reply.attachment is not None and reply.attachment.filename == "audit.txt"
    assert len(reply.attachment.content.decode().splitlines()) == len(many) + 1


def test_a_multi_line_or_coloured_error_stays_on_its_row() -> None:
    odd = entry(3, outcome=AuditOutcome.FAILED, error="proxy said:\n<html>\x1b[31mBad</html>")
    lines = render([*ENTRIES, odd], "table").splitlines()
    assert len(lines) == 5  # headings and one line per entry
    assert lines[-1].endswith("proxy said: <html> [31mBad</html>")
    assert "\x1b" not in render([odd], "table")


def test_json_has_every_field() -> None:
    records = json.loads(render(ENTRIES, "json"))
    assert records[1] == {
        "id": None,
        "at": "2025-03-01T12:01:00.000000Z",
        "platform": "console",
        "channel": "ops",
        "user": "console:alice",
        "command": "deploy nova v2",
        "action": "deploy",
        "service": "nova",
        "approvers": ["console:bob", "console:dave"],
        "outcome": "ok",
        "duration_ms": 42000,
        "error": None,
        "detail": None,
        "request_id": None,
    }


def test_csv_has_a_header_and_one_row_per_entry() -> None:
    rows = list(csv.DictReader(io.StringIO(render(ENTRIES, "csv"))))
    assert len(rows) == 3
    assert rows[1]["approvers"] == "console:bob console:dave"
    assert rows[2]["error"] == "ImagePullBackOff"
    assert rows[0]["outcome"] == "refused"


def test_table_has_full_dates_and_channels() -> None:
    lines = render(ENTRIES, "table").splitlines()
    assert lines[0].split() == [
        "TIME",
        "PLATFORM",
        "CHANNEL",
        "USER",
        "COMMAND",
        "OUTCOME",
        "APPROVERS",
        "TOOK",
        "NOTE",
    ]
    assert lines[3].startswith("2025-03-01 12:02:00  console   ops      console:bob")


def test_since_takes_durations_and_dates() -> None:
    assert parse_since("2h", T0) == T0 - timedelta(hours=2)
    assert parse_since("2025-03-01T10:00", T0) == datetime(2025, 3, 1, 10, tzinfo=UTC)
    with pytest.raises(ValueError, match="neither a duration"):
        parse_since("yesterday", T0)


def cli(*argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="holmbot audit")
    add_audit_arguments(parser)
    out, err = io.StringIO(), io.StringIO()
    code = run_audit_cli(parser.parse_args(list(argv)), out, err)
    return code, out.getvalue(), err.getvalue()


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "holmbot.yaml"
    path.write_text(f"state_dir: {tmp_path / 'state'}\n")
    return path


async def test_cli_prints_what_the_engine_audited(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    state = await State.in_dir(tmp_path / "state")
    policy = Policy(AccessConfig.model_validate(demo_access()))
    approvals = Approvals(policy, state)
    text = "deploy postgres v16"
    invocation = Invocation(user=ALICE, channel="console", text=text)
    opened = await approvals.open_request(invocation, parse_command(text), ApprovalRule())
    await approvals.vote(ALICE, opened.request.id, approve=True)
    await approvals.vote(BOB, opened.request.id, approve=True)
    await state.audit(
        AuditEntry.of(invocation, AuditOutcome.OK, approvers=("console:bob",), duration_ms=9000)
    )
    # the bot is still running (the file is open) while the CLI reads it
    code, out, err = await asyncio.to_thread(cli, "--config", str(config), "--format", "json")
    await state.close()
    assert (code, err) == (0, "")
    records = json.loads(out)
    assert [(r["user"], r["action"], r["outcome"]) for r in records] == [
        ("console:alice", "deploy", "approval-requested"),
        ("console:alice", "approve", "refused"),
        ("console:bob", "approve", "approved"),
        ("console:alice", None, "ok"),
    ]
    assert records[2]["approvers"] == ["console:bob"]
    assert records[2]["request_id"] == opened.request.id

    code, out, _ = await asyncio.to_thread(
        cli, "--config", str(config), "--user", "console:bob", "--format", "csv"
    )
    assert code == 0 and len(out.splitlines()) == 2
    code, out, _ = await asyncio.to_thread(
        cli, "--config", str(config), "--since", "1h", "--limit", "2"
    )
    assert code == 0 and len(out.splitlines()) == 3
    assert "approved" in out.splitlines()[1]
    code, out, _ = await asyncio.to_thread(
        cli, "--config", str(config), "--since", "2000-01-01", "--user", "x:y"
    )
    assert code == 0 and len(out.splitlines()) == 1  # the header only


def test_cli_reports_bad_input(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    code, out, err = cli("--config", str(config))
    assert code == 2 and out == ""
    assert f"no state file at {tmp_path / 'state' / 'holmbot.db'}" in err
    code, _, err = cli("--config", str(config), "--since", "soon")
    assert code == 2 and "'soon' is neither a duration" in err
    assert parse_since("1000000d") == datetime.min.replace(tzinfo=UTC)  # not an OverflowError
    code, _, err = cli("--config", str(tmp_path / "missing.yaml"))
    assert code == 2 and "not found" in err
