"""`/backup create [NAME]`, `/backup list`, `/backup restore ID`: the backup service's commands."""

from __future__ import annotations

from commands.clients.backup import (
    COMPLETED,
    LIST_LIMIT,
    BackupClient,
    BackupError,
    BackupUnavailable,
)
from commands.core.formatting import age, human_bytes
from commands.core.models import Outcome, Reply, Table, Tone
from commands.core.parser import BackupCreateCommand, BackupListCommand, BackupRestoreCommand
from commands.tracking.backups import follow_backup, follow_restore


def _failure(title: str, exc: BackupError) -> Outcome:
    return Outcome(Reply(title=title, tone=Tone.ERROR, lines=[str(exc)]), failed=True)


def _not_started(what: str, exc: BackupError) -> Outcome:
    """A create or restore that failed: it did not start, or may have if no answer came."""
    if isinstance(exc, BackupUnavailable) and exc.may_have_acted:
        lines = [str(exc), "/backup list shows whether it did; a running restore answers 409"]
        reply = Reply(title=f"{what} may have started", tone=Tone.WARNING, lines=lines)
        return Outcome(reply, failed=True)
    return _failure(f"{what} not started", exc)


async def list_backups(client: BackupClient) -> Outcome:
    """`/backup list`: the newest backups as a table."""
    try:
        listing = await client.list_backups()
    except BackupError as exc:
        return _failure("Cannot list backups", exc)
    backups = listing.backups
    unreadable = (
        [f"{listing.unreadable} record(s) the backup service sent could not be read"]
        if listing.unreadable
        else []
    )
    if not backups:
        lines = [*unreadable, "/backup create starts one"]
        return Outcome(Reply(title="No backups yet", lines=lines))
    rows = [
        [b.id, b.name or "-", b.status, human_bytes(b.size_bytes), age(b.created_at)]
        for b in backups[:LIST_LIMIT]
    ]
    more = len(backups) - LIST_LIMIT
    return Outcome(
        Reply(
            title=f"{len(backups)} backup{'s' if len(backups) != 1 else ''}",
            table=Table(columns=["ID", "NAME", "STATUS", "SIZE", "AGE"], rows=rows),
            lines=[*unreadable, *([f"and {more} older"] if more > 0 else [])],
        )
    )


async def create_backup(client: BackupClient, name: str | None = None) -> Outcome:
    """`/backup create [NAME]`: start a backup and follow it to completion."""
    try:
        backup = await client.create_backup(name)
    except BackupError as exc:
        return _not_started("Backup", exc)
    label = f"backup {backup.id}" + (f" ({backup.name})" if backup.name else "")
    return Outcome(
        Reply(title=f"Started {label}"), follow_backup(client, backup.id), operation_id=backup.id
    )


async def restore_backup(client: BackupClient, backup_id: str) -> Outcome:
    """`/backup restore ID`: start a restore and follow it to completion."""
    try:
        restore = await client.start_restore(backup_id)
    except BackupError as exc:
        if exc.status == 404:
            return await unknown_backup(client, backup_id)
        return _not_started(f"Restore of {backup_id}", exc)
    return Outcome(
        Reply(title=f"Restoring {backup_id} ({restore.id})"),
        follow_restore(client, restore.id),
        operation_id=restore.id,
    )


async def unknown_backup(client: BackupClient, backup_id: str) -> Outcome:
    """No backup is called `backup_id`: say so, with the newest completed ones."""
    lines = ["/backup list shows the available backups"]
    try:
        listing = await client.list_backups()
        newest = [b.id for b in listing.backups if b.status == COMPLETED][:3]
    except BackupError:
        newest = []
    if newest:
        lines = [f"newest completed backups: {', '.join(newest)}"]
    reply = Reply(title=f"No backup called {backup_id}", tone=Tone.ERROR, lines=lines)
    return Outcome(reply, refused=True)


BackupCommand = BackupCreateCommand | BackupListCommand | BackupRestoreCommand


async def run_backup_command(command: BackupCommand, client: BackupClient) -> Outcome:
    """Route a parsed `/backup ...` command to its handler."""
    if isinstance(command, BackupCreateCommand):
        return await create_backup(client, command.name)
    if isinstance(command, BackupRestoreCommand):
        return await restore_backup(client, command.backup_id)
    return await list_backups(client)
