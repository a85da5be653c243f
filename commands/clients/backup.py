"""The backup service (runbook 4.1/4.2): an HTTP client and the `/backup` command handlers.

The contract: `POST /api/backup/create` (optional `{"name"}`), `GET /api/backups`, and
`POST /api/backup/restore` with `{"backup_id"}`. Errors are JSON `{"error": ...}`: 404 unknown
backup, 409 a restore already running or a backup not completed. The service has no watch, so
a backup is followed by polling the list until it finishes or `operation_timeout_seconds` runs
out; a restore is followed through `GET /api/restores/ID` where the service offers it (the
sandbox's does), else reported as started.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from commands.core.config import BackupConfig

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
