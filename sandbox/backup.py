"""The HolmOS backup-storage service (runbook 4.1/4.2) as a small aiohttp application.

Contract:

- `POST /api/backup/create`, optional body `{"name": "..."}` -> 202, the new backup (`running`;
  `completed` after the backup duration). Ids come from UTC time, `backup-20240115-120000`, with
  `-2`, `-3`... appended when several start in the same second.
- `GET /api/backups` -> `{"backups": [...]}`, newest first; `GET /api/backups/{id}` -> one backup.
- `POST /api/backup/restore`, body `{"backup_id": "..."}` -> 202, a restore record (`running`,
  then `completed`). 400 malformed body, 404 unknown backup, 409 when a restore is already
  running or the backup is not `completed`.
- `GET /api/restores` (newest first) and `GET /api/restores/{id}` to follow a restore.
- `GET /health` -> `{"status": "ok"}`.

Every error is JSON `{"error": "..."}`. State is saved as JSON in the state directory after
every change. A backup or restore still `running` when the service stops is marked `failed`
(on a clean stop at once, after a crash on the next start): the work it stood for died with the
process, so claiming it completed would report a backup that does not exist; `failed` is what
an operator must see and act on.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, Field, ValidationError

log = logging.getLogger(__name__)
ModelT = TypeVar("ModelT", bound=BaseModel)

STATE_FILE = "backups.json"
INTERRUPTED = "interrupted: the backup service stopped before this finished"


class Status(StrEnum):
    """Where a backup or restore stands."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class Backup(BaseModel):
    """One backup as the API reports it."""

    id: str
    name: str | None = None
    status: Status
    created_at: datetime
    completed_at: datetime | None = None
    size_bytes: int | None = None
    error: str | None = None


class Restore(BaseModel):
    """One restore of a backup, tracked until it finishes."""

    id: str
    backup_id: str
    status: Status
    started_at: datetime
    completed_at: datetime | None = None
    error: str | None = None


class CreateBackupRequest(BaseModel):
    """Body of `POST /api/backup/create` (the body itself is optional)."""

    name: str | None = Field(default=None, min_length=1, max_length=128)


class RestoreRequest(BaseModel):
    """Body of `POST /api/backup/restore`."""

    backup_id: str = Field(min_length=1, max_length=128)


class _State(BaseModel):
    backups: list[Backup] = []
    restores: list[Restore] = []


class BackupError(Exception):
    """A request the service refuses; carries the HTTP status the API answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _utc_now() -> datetime:
    return datetime.now(UTC)


class BackupService:
    """The service's state and rules; `build_app()` exposes them over HTTP.

    `backup_seconds` and `restore_seconds` are simulated durations, divided by `speed` to get
    real seconds (tests use a high speed). `now` is the clock ids and timestamps come from.
    """

    def __init__(
        self,
        state_dir: Path | str,
        *,
        backup_seconds: float = 3.0,
        restore_seconds: float = 5.0,
        speed: float = 1.0,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.state_dir = Path(state_dir)
        self.backup_seconds = backup_seconds
        self.restore_seconds = restore_seconds
        self.speed = speed
        self._now = now
        self._timers: dict[str, asyncio.TimerHandle] = {}  # record id -> its completion
        self._fail_next: dict[str, str] = {}  # "backup"/"restore" -> reason
        self._state = self._load()

    @property
    def state_path(self) -> Path:
        return self.state_dir / STATE_FILE

    # -- persistence ----------------------------------------------------------------------

    def _load(self) -> _State:
        try:
            raw = self.state_path.read_text()
        except FileNotFoundError:
            return _State()
        try:
            state = _State.model_validate_json(raw)
        except ValidationError as exc:
            raise ValueError(f"unreadable backup state {self.state_path}: {exc}") from exc
        if self._mark_interrupted(state):
            self._save(state)
        return state

    def _save(self, state: _State | None = None) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text((self._state if state is None else state).model_dump_json(indent=2))
        os.replace(tmp, self.state_path)

    # -- the rules ------------------------------------------------------------------------

    def _timestamp(self) -> datetime:
        return self._now().astimezone(UTC).replace(microsecond=0)

    def _new_id(self, prefix: str, at: datetime, taken: set[str]) -> str:
        base = f"{prefix}-{at:%Y%m%d-%H%M%S}"
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            candidate = f"{base}-{n}"
        return candidate

    def _real(self, seconds: float) -> float:
        return seconds / self.speed

    def _schedule(self, record_id: str, seconds: float, callback: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        self._timers[record_id] = loop.call_later(self._real(seconds), callback)

    def list_backups(self) -> list[Backup]:
        """All backups, newest first (same-second backups: the later one first)."""
        newest_first = list(reversed(self._state.backups))
        return sorted(newest_first, key=lambda b: b.created_at, reverse=True)

    def get_backup(self, backup_id: str) -> Backup:
        for backup in self._state.backups:
            if backup.id == backup_id:
                return backup
        raise BackupError(404, f"backup {backup_id!r} not found")

    def list_restores(self) -> list[Restore]:
        newest_first = list(reversed(self._state.restores))
        return sorted(newest_first, key=lambda r: r.started_at, reverse=True)

    def get_restore(self, restore_id: str) -> Restore:
        for restore in self._state.restores:
            if restore.id == restore_id:
                return restore
        raise BackupError(404, f"restore {restore_id!r} not found")

    def fail_next_backup(self, reason: str = "pg_dump exited with status 1") -> None:
        """Make the next backup end `failed` with `reason` (for demos and failure tests)."""
        self._fail_next["backup"] = reason

    def fail_next_restore(self, reason: str = "psql exited with status 3") -> None:
        """Make the next restore end `failed` with `reason`."""
        self._fail_next["restore"] = reason

    def create_backup(self, name: str | None = None) -> Backup:
        """Start a backup; it completes after the backup duration. Needs a running loop."""
        at = self._timestamp()
        backup_id = self._new_id("backup", at, {b.id for b in self._state.backups})
        backup = Backup(id=backup_id, name=name, status=Status.RUNNING, created_at=at)
        self._state.backups.append(backup)
        failure = self._fail_next.pop("backup", None)
        self._schedule(backup_id, self.backup_seconds, lambda: self._finish_backup(backup, failure))
        self._save()
        return backup

    def _finish_backup(self, backup: Backup, failure: str | None) -> None:
        self._timers.pop(backup.id, None)
        backup.completed_at = self._timestamp()
        if failure is None:
            digest = hashlib.sha256(backup.id.encode()).digest()
            backup.status = Status.COMPLETED
            backup.size_bytes = 40 * 2**20 + int.from_bytes(digest[:4]) % (24 * 2**20)
        else:
            backup.status, backup.error = Status.FAILED, failure
        self._save()

    def start_restore(self, backup_id: str) -> Restore:
        """Start restoring a completed backup; one restore at a time. Needs a running loop."""
        backup = self.get_backup(backup_id)
        running = next((r for r in self._state.restores if r.status is Status.RUNNING), None)
        if running is not None:
            raise BackupError(
                409, f"restore {running.id} of {running.backup_id} is already running"
            )
        if backup.status is not Status.COMPLETED:
            raise BackupError(
                409, f"backup {backup_id} is {backup.status.value}; only completed backups restore"
            )
        at = self._timestamp()
        restore_id = self._new_id("restore", at, {r.id for r in self._state.restores})
        restore = Restore(id=restore_id, backup_id=backup_id, status=Status.RUNNING, started_at=at)
        self._state.restores.append(restore)
        failure = self._fail_next.pop("restore", None)
        self._schedule(
            restore_id, self.restore_seconds, lambda: self._finish_restore(restore, failure)
        )
        self._save()
        return restore

    def _finish_restore(self, restore: Restore, failure: str | None) -> None:
        self._timers.pop(restore.id, None)
        restore.completed_at = self._timestamp()
        if failure is None:
            restore.status = Status.COMPLETED
        else:
            restore.status, restore.error = Status.FAILED, failure
        self._save()

    def close(self) -> None:
        """Stop: pending completions are cancelled and what was running is marked `failed`.

        The same rule as a restart after a crash (see the module docstring), applied at once.
        """
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._mark_interrupted(self._state):
            self._save()

    def _mark_interrupted(self, state: _State) -> bool:
        now, changed = self._timestamp(), False
        for record in (*state.backups, *state.restores):
            if record.status is Status.RUNNING:
                record.status, record.completed_at, record.error = Status.FAILED, now, INTERRUPTED
                changed = True
        return changed

    # -- HTTP -----------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        """The HTTP API over this service; closing the app cancels pending completions."""
        app = web.Application(middlewares=[_json_errors])
        app.router.add_get("/health", _health)
        app.router.add_post("/api/backup/create", self._handle_create)
        app.router.add_get("/api/backups", self._handle_list)
        app.router.add_get("/api/backups/{id}", self._handle_get)
        app.router.add_post("/api/backup/restore", self._handle_restore)
        app.router.add_get("/api/restores", self._handle_list_restores)
        app.router.add_get("/api/restores/{id}", self._handle_get_restore)

        async def on_cleanup(_: web.Application) -> None:
            self.close()

        app.on_cleanup.append(on_cleanup)
        return app

    async def _handle_create(self, request: web.Request) -> web.Response:
        body = _parse(CreateBackupRequest, await _json_object(request, required=False))
        backup = self.create_backup(body.name)
        return _json(backup, status=202, location=f"/api/backups/{backup.id}")

    async def _handle_list(self, request: web.Request) -> web.Response:
        return _json({"backups": self.list_backups()})

    async def _handle_get(self, request: web.Request) -> web.Response:
        return _json(self.get_backup(request.match_info["id"]))

    async def _handle_restore(self, request: web.Request) -> web.Response:
        body = _parse(RestoreRequest, await _json_object(request, required=True))
        restore = self.start_restore(body.backup_id)
        return _json(restore, status=202, location=f"/api/restores/{restore.id}")

    async def _handle_list_restores(self, request: web.Request) -> web.Response:
        return _json({"restores": self.list_restores()})

    async def _handle_get_restore(self, request: web.Request) -> web.Response:
        return _json(self.get_restore(request.match_info["id"]))


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {key: _dump(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_dump(item) for item in value]
    return value


def _json(value: Any, *, status: int = 200, location: str | None = None) -> web.Response:
    headers = {"Location": location} if location else None
    return web.json_response(_dump(value), status=status, headers=headers)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


async def _json_object(request: web.Request, *, required: bool) -> dict[str, Any]:
    raw = (await request.read()).strip()
    if not raw:
        if required:
            raise BackupError(400, "request body must be a JSON object")
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BackupError(400, f"request body is not valid JSON: {exc}") from exc
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise BackupError(400, "request body must be a JSON object")
    return value


def _parse(model: type[ModelT], body: dict[str, Any]) -> ModelT:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in exc.errors()
        )
        raise BackupError(400, f"invalid request: {problems}") from exc


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every failure leaves as JSON `{"error": ...}` with its status, never a traceback."""
    try:
        return await handler(request)
    except BackupError as exc:
        return _error(exc.status, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return _error(exc.status, f"{exc.reason.lower()}: {request.method} {request.path}", headers)
    except Exception:
        log.exception("backup service failed on %s %s", request.method, request.path)
        return _error(500, "internal error in the backup service")
