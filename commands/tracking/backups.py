"""Following a backup or a restore to its end: the backup service has no watch, so its list
(or `GET /api/restores/ID`) is polled until the record finishes or the timeout runs out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from commands.clients.backup import (
    COMPLETED,
    FAILED,
    BackupClient,
    BackupError,
    BackupRecord,
    BackupUnavailable,
    Record,
)
from commands.core.formatting import human_bytes, human_seconds
from commands.core.models import FinalResult, Phase, Progress, ProgressUpdate

WAITING = frozenset({"asked", "queued", "pending"})  # statuses of a backup not yet started


async def _follow(
    client: BackupClient,
    what: str,
    record_id: str,
    fetch: Callable[[str], Awaitable[Record]],
    done: Callable[[Record], str],
    untracked: str | None = None,
) -> AsyncIterator[Progress]:
    """Poll `fetch(record_id)` until it is no longer running: updates, then one final result.

    `untracked`: the result to give when the service cannot be asked about it at all (a 404
    on the first poll), for what the service may not report."""
    started = time.monotonic()
    limit = client.config.operation_timeout_seconds
    first = True
    shown: ProgressUpdate | None = None
    status = "asked"
    while True:
        problems: list[str] = []
        try:
            record = await fetch(record_id)
        except BackupUnavailable as exc:
            problems = [f"{exc}; still trying"]
        except BackupError as exc:
            if untracked is not None and first and exc.status == 404:
                yield FinalResult(
                    operation_id=record_id,
                    ok=True,
                    message=untracked,
                    duration_seconds=time.monotonic() - started,
                )
                return
            yield FinalResult(
                operation_id=record_id,
                ok=False,
                message=f"{what} {record_id}: lost track of it ({exc})",
                duration_seconds=time.monotonic() - started,
                reason="lost",
            )
            return
        else:
            status = record.status
            if record.status == COMPLETED or record.status in FAILED:
                ok = record.status == COMPLETED
                failed = f"{what} {record_id} {record.status}: {record.error or 'no reason given'}"
                yield FinalResult(
                    operation_id=record_id,
                    ok=ok,
                    message=done(record) if ok else failed,
                    duration_seconds=time.monotonic() - started,
                    reason=None if ok else record.status,
                )
                return
        first = False
        elapsed = time.monotonic() - started
        if elapsed >= limit:
            yield FinalResult(
                operation_id=record_id,
                ok=False,
                message=f"{what} {record_id} still not finished after {human_seconds(limit)}; "
                "holmbot stopped following it (see /backup list)",
                duration_seconds=elapsed,
                reason="timeout",
            )
            return
        update = ProgressUpdate(
            operation_id=record_id,
            message=f"{what} {record_id} {status}",
            phase=Phase.WAITING if status in WAITING else Phase.PROGRESSING,
            problems=problems,
        )
        if update != shown:  # a poll that found nothing new says nothing
            yield update
            shown = update
        await asyncio.sleep(min(client.config.poll_interval_seconds, limit - elapsed))


def follow_backup(client: BackupClient, backup_id: str) -> AsyncIterator[Progress]:
    """Follow a backup to its end (also one started before a restart)."""

    def done(backup: BackupRecord) -> str:
        label = f"backup {backup.id}" + (f" ({backup.name})" if backup.name else "")
        return f"{label} completed: {human_bytes(backup.size_bytes)}"

    return _follow(client, "backup", backup_id, client.get_backup, done)


def follow_restore(client: BackupClient, restore_id: str) -> AsyncIterator[Progress]:
    """Follow a restore to its end (also one started before a restart)."""
    return _follow(
        client,
        "restore",
        restore_id,
        client.get_restore,
        lambda restore: f"restore of {restore.backup_id} completed",
        untracked=f"restore {restore_id} started; the backup service does not report "
        "how restores go, so check the restored data",
    )
