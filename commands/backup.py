"""The backup service (runbook 4.1/4.2): an HTTP client and the `/backup` command handlers.

The contract: `POST /api/backup/create` (optional `{"name"}`), `GET /api/backups`, and
`POST /api/backup/restore` with `{"backup_id"}`. Errors are JSON `{"error": ...}`: 404 unknown
backup, 409 a restore already running or a backup not completed. The service has no watch, so
a backup is followed by polling the list until it finishes or `operation_timeout_seconds` runs
out; a restore is followed through `GET /api/restores/ID` where the service offers it (the
sandbox's does), else reported as started.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from commands.config import BackupConfig
from commands.formatting import age, human_bytes, human_seconds
from commands.models import FinalResult, Outcome, Progress, ProgressUpdate, Reply, Table, Tone
from commands.parser import BackupCreateCommand, BackupListCommand, BackupRestoreCommand

COMPLETED = "completed"
FAILED = frozenset({"failed", "error", "cancelled", "canceled"})  # any other status: not done yet
LIST_LIMIT = 20


log = logging.getLogger(__name__)
TRANSIENT_STATUSES = frozenset({408, 429})  # worth asking again, like a 5xx


class BackupError(Exception):
    """The backup service refused a request; `status` is its HTTP status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class BackupUnavailable(BackupError):
    """The backup service is down, too slow, busy (429) or failing (5xx): worth asking again.

    `may_have_acted`: the request reached it and no answer came back in time, so a create or
    restore may have started all the same.
    """

    def __init__(
        self, message: str, status: int | None = None, *, may_have_acted: bool = False
    ) -> None:
        super().__init__(message, status)
        self.may_have_acted = may_have_acted


@dataclass
class BackupListing:
    """`GET /api/backups`: the backups that could be read, newest first, and how many not."""

    backups: list[BackupRecord]
    unreadable: int = 0


class BackupRecord(BaseModel):
    """One backup as the service reports it."""

    model_config = ConfigDict(extra="ignore")

    id: str
    name: str | None = None
    status: str
    created_at: datetime
    completed_at: datetime | None = None
    size_bytes: int | None = None
    error: str | None = None


class RestoreRecord(BaseModel):
    """One restore, followed until it finishes."""

    model_config = ConfigDict(extra="ignore")

    id: str
    backup_id: str
    status: str
    started_at: datetime
    completed_at: datetime | None = None
    error: str | None = None


Record = TypeVar("Record", BackupRecord, RestoreRecord)


class BackupClient:
    """Async client for the backup service; also carries the polling settings."""

    def __init__(self, config: BackupConfig) -> None:
        self.config = config
        self.url = config.url
        self._http = httpx.AsyncClient(base_url=config.url, timeout=config.timeout_seconds)

    async def __aenter__(self) -> BackupClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One request; the decoded JSON body of a 2xx, else a `BackupError`."""
        try:
            response = await self._http.request(method, path, json=body)
        except httpx.TimeoutException as exc:
            raise BackupUnavailable(
                f"backup service at {self.url} did not answer within "
                f"{self.config.timeout_seconds:g}s",
                may_have_acted=isinstance(exc, httpx.ReadTimeout),
            ) from None
        except httpx.TransportError as exc:
            detail = str(exc) or type(exc).__name__
            raise BackupUnavailable(
                f"backup service at {self.url} is unreachable: {detail}"
            ) from None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        message = payload.get("error") if isinstance(payload, dict) else None
        if response.status_code >= 500 or response.status_code in TRANSIENT_STATUSES:
            raise BackupUnavailable(
                f"backup service at {self.url} failed ({response.status_code})"
                + (f": {message}" if message else ""),
                response.status_code,
            )
        if response.status_code >= 400:
            raise BackupError(
                message or f"{method} {path} answered {response.status_code}", response.status_code
            )
        if payload is None:
            raise BackupError(f"backup service at {self.url} sent a malformed answer to {path}")
        return payload

    def _parse(self, model: type[Record], payload: Any) -> Record:
        try:
            return model.model_validate(payload)
        except ValidationError:
            raise BackupError(
                f"backup service at {self.url} sent a malformed {model.__name__}"
            ) from None

    async def list_backups(self) -> BackupListing:
        """Every backup, newest first (whatever order the service sends them in); a record
        that cannot be read is counted, not allowed to hide the others."""
        payload = await self._call("GET", "/api/backups")
        items = payload.get("backups") if isinstance(payload, dict) else None
        if not isinstance(items, list):
            raise BackupError(f"backup service at {self.url} sent a malformed backup list")
        backups = []
        for item in items:
            try:
                backups.append(BackupRecord.model_validate(item))
            except ValidationError:
                log.warning("backup service at %s sent an unreadable backup record", self.url)
        backups.sort(key=lambda backup: backup.created_at, reverse=True)
        return BackupListing(backups, unreadable=len(items) - len(backups))

    async def get_backup(self, backup_id: str) -> BackupRecord:
        """One backup, found in the list (the contract has no read of a single backup)."""
        found = [b for b in (await self.list_backups()).backups if b.id == backup_id]
        if not found:
            raise BackupError(f"no backup called {backup_id}", 404)
        return found[0]

    async def create_backup(self, name: str | None = None) -> BackupRecord:
        body = {"name": name} if name else {}
        return self._parse(BackupRecord, await self._call("POST", "/api/backup/create", body))

    async def start_restore(self, backup_id: str) -> RestoreRecord:
        body = {"backup_id": backup_id}
        return self._parse(RestoreRecord, await self._call("POST", "/api/backup/restore", body))

    async def get_restore(self, restore_id: str) -> RestoreRecord:
        return self._parse(RestoreRecord, await self._call("GET", f"/api/restores/{restore_id}"))


# --- following an operation to its end -------------------------------------------------------


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
        yield ProgressUpdate(
            operation_id=record_id,
            message=f"{what} {record_id} running ({human_seconds(elapsed)})",
            problems=problems,
        )
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


# --- the command handlers -------------------------------------------------------------------


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
