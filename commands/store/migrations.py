"""The state file's schema, as a list of migrations: `PRAGMA user_version` says how many ran.

A fresh file runs them all; a file from an older holmbot runs the ones it lacks, each in one
transaction, so every request, vote, operation and audit entry it holds is kept. A migration,
once released, never changes: add a new one instead. A file newer than this code is refused.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils


class SchemaTooNew(Exception):
    """The state file was written by a newer holmbot."""


def _base_schema(db: sqlite_utils.Database) -> None:
    """Version 1: requests and votes, operations, the audit log, handled deliveries."""
    db.table("requests").create(
        {
            "id": str,
            "user": str,
            "user_name": str,
            "groups": str,
            "platform": str,
            "channel": str,
            "text": str,
            "action": str,
            "service": str,
            "command": str,
            "approvals_needed": int,
            "approver_roles": str,
            "expires_at": str,
            "status": str,
            "created_at": str,
            "finished_at": str,
            "message_ref": str,
        },
        pk="id",
        not_null={"user", "platform", "channel", "text", "action", "status"},
    )
    db.table("votes").create(
        {"request_id": str, "user": str, "approve": int, "at": str}, pk=("request_id", "user")
    )
    db.table("operations").create(
        {
            "id": str,
            "kind": str,
            "service": str,
            "summary": str,
            "started_by": str,
            "platform": str,
            "channel": str,
            "message_ref": str,
            "state": str,
            "started_at": str,
            "finished_at": str,
            "message": str,
            "detail": str,
        },
        pk="id",
    )
    db.table("audit").create(
        {
            "id": int,
            "at": str,
            "platform": str,
            "channel": str,
            "user": str,
            "command": str,
            "action": str,
            "service": str,
            "approvers": str,
            "outcome": str,
            "duration_ms": int,
            "error": str,
            "detail": str,
            "request_id": str,
        },
        pk="id",
    )
    db.table("deliveries").create(
        {"platform": str, "delivery_id": str, "at": str}, pk=("platform", "delivery_id")
    )
    for table, columns in (
        ("requests", ["status", "expires_at"]),
        ("requests", ["message_ref"]),
        ("operations", ["state", "service"]),
        ("audit", ["at"]),
        ("audit", ["user", "at"]),
        ("deliveries", ["at"]),
    ):
        db.table(table).create_index(columns)


def _message_refs(db: sqlite_utils.Database) -> None:
    """Version 2: any number of chat messages per request or operation, found by
    (platform, channel, message id). The single `message_ref` text columns move there, on the
    platform and channel of their request or operation, and go. An executed request names the
    operation it started."""
    db.table("message_refs").create(
        {
            "platform": str,
            "channel": str,
            "message_id": str,
            "thread": str,
            "subject_kind": str,  # request | operation
            "subject_id": str,
            "purpose": str,  # what the message shows: request, progress ...
            "created_at": str,
        },
        pk=("platform", "channel", "message_id"),
        not_null={"subject_kind", "subject_id", "purpose", "created_at"},
    )
    db.table("message_refs").create_index(["subject_kind", "subject_id"])
    for table, kind, purpose, created in (
        ("requests", "request", "request", "created_at"),
        ("operations", "operation", "progress", "started_at"),
    ):
        db.execute(
            "INSERT OR IGNORE INTO message_refs (platform, channel, message_id, subject_kind,"
            " subject_id, purpose, created_at)"
            f" SELECT platform, channel, message_ref, ?, id, ?, {created} FROM {table}"
            " WHERE message_ref IS NOT NULL",
            [kind, purpose],
        )
    db.execute("DROP INDEX IF EXISTS idx_requests_message_ref")
    db.execute("ALTER TABLE requests DROP COLUMN message_ref")
    db.execute("ALTER TABLE operations DROP COLUMN message_ref")
    db.execute("ALTER TABLE requests ADD COLUMN operation_id TEXT")


MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (_base_schema, _message_refs)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: sqlite_utils.Database) -> int:
    """Bring the file to `SCHEMA_VERSION`; return the version it had."""
    found = db.execute("PRAGMA user_version").fetchone()[0]
    if found > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"state file schema {found} is newer than this holmbot's ({SCHEMA_VERSION}); "
            "run the newer holmbot or restore a backup of the state file"
        )
    for version in range(found, SCHEMA_VERSION):
        with db.conn:  # one transaction per step: a failed step leaves the file as it was
            db.execute("BEGIN")
            MIGRATIONS[version](db)
            db.execute(f"PRAGMA user_version = {version + 1}")
    return found
