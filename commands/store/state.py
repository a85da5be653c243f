"""What survives a restart: approval requests and votes, tracked operations, the chat messages
bound to them, the audit log and the delivery ids already handled, in one SQLite file (WAL) in
the state directory. Its schema is versioned (`commands/store/migrations.py`).

Every SQLite call runs on one worker thread with one connection (`sqlite-utils` for the schema
and reads), so the event loop never waits on the disk and calls never interleave inside SQL.
Status changes are compare-and-set: a request leaves `pending` once, and runs once.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Literal, Self, TypeVar

import sqlite_utils
from pydantic import BaseModel, ConfigDict, Field

from commands.core.formatting import truncate
from commands.core.models import Invocation, MessageRef, Platform, User
from commands.core.parser import BaseCommand, Command, command_text
from commands.store.migrations import SchemaTooNew, migrate

DB_FILENAME = "holmbot.db"
AUDIT_COMMAND_CHARS = 2000  # what a user typed, as written down (a paste is cut)
DELIVERY_TTL = timedelta(days=1)  # platforms retry within minutes; keep a day
_PRUNE_EVERY_SECONDS = 600.0
_ID_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i
_ID_LENGTH = 4

T = TypeVar("T")


def _insert_statement(
    table: str, row: dict[str, Any], verb: str = "INSERT"
) -> tuple[str, list[Any]]:
    columns = ", ".join(f'"{name}"' for name in row)
    marks = ", ".join("?" for _ in row)
    return f"{verb} INTO {table} ({columns}) VALUES ({marks})", list(row.values())


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(when: datetime) -> str:
    """Fixed-width UTC text, so comparing the text compares the times."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Row(BaseModel):
    """A stored row; `json_fields` are kept as JSON text."""

    model_config = ConfigDict(frozen=True)
    json_fields: ClassVar[frozenset[str]] = frozenset()

    def to_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for name, value in self:
            if isinstance(value, datetime):
                value = _ts(value)
            elif isinstance(value, BaseModel):
                value = value.model_dump_json()
            elif name in self.json_fields:
                value = json.dumps(value)
            elif isinstance(value, StrEnum):
                value = value.value
            row[name] = value
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Self:
        return cls.model_validate(
            {
                name: json.loads(value) if name in cls.json_fields and value is not None else value
                for name, value in row.items()
            }
        )


# --- approval requests and votes ----------------------------------------------------------


class RequestStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"  # enough approvals; the layer runs it, then marks it executed
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    EXECUTED = "executed"
    REFUSED = "refused"  # approved, but refused when it ran (busy, nothing to do): nothing ran


class ApprovalRequest(_Row):
    """A command waiting for approval, with everything needed to run it as the requester."""

    json_fields: ClassVar[frozenset[str]] = frozenset({"groups", "approver_roles", "command"})

    id: str
    user: str  # the requester, `PLATFORM:ID`
    user_name: str | None = None
    groups: tuple[str, ...] = ()
    platform: Platform
    channel: str
    text: str  # the command's canonical text
    action: str
    service: str | None = None
    command: Command
    approvals_needed: int
    approver_roles: tuple[str, ...]
    expires_at: datetime
    status: RequestStatus = RequestStatus.PENDING
    created_at: datetime
    finished_at: datetime | None = None
    operation_id: str | None = None  # the operation it started, once executed

    def invocation(self) -> Invocation:
        """The original invocation: who asked, where, what."""
        user = User.parse(self.user, self.groups).model_copy(
            update={"display_name": self.user_name}
        )
        return Invocation(
            user=user, channel=self.channel, text=self.text, received_at=self.created_at
        )


class Vote(_Row):
    request_id: str
    user: str
    approve: bool
    at: datetime


# --- tracked operations -------------------------------------------------------------------


class OperationState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class TrackedOperation(_Row):
    """A long operation (rollout, backup...) and where its progress message lives."""

    json_fields: ClassVar[frozenset[str]] = frozenset({"detail"})

    id: str
    kind: str  # deploy, restart, rollback, scale, backup.create ...
    service: str | None = None
    summary: str = ""  # e.g. "deploy nova:v2"
    started_by: str  # `PLATFORM:ID`
    platform: Platform
    channel: str
    state: OperationState = OperationState.RUNNING
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    message: str | None = None  # the final result's text
    detail: dict[str, Any] = Field(default_factory=dict)  # e.g. {"revision_before": 3}


SubjectKind = Literal["request", "operation"]


class BoundMessage(_Row):
    """A chat message holmbot posted for a request (to vote on) or an operation (its progress)."""

    platform: Platform
    channel: str
    message_id: str
    thread: str | None = None
    subject_kind: SubjectKind
    subject_id: str
    purpose: str  # what the message shows: request, progress ...
    created_at: datetime

    @property
    def ref(self) -> MessageRef:
        return MessageRef(
            platform=self.platform,
            channel=self.channel,
            message_id=self.message_id,
            thread=self.thread,
        )


# --- the audit log ------------------------------------------------------------------------


class AuditOutcome(StrEnum):
    OK = "ok"
    FAILED = "failed"
    REFUSED = "refused"  # by policy, or a vote that does not count
    APPROVAL_REQUESTED = "approval-requested"
    VOTED = "voted"  # an approval counted, more needed
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    DUPLICATE = "duplicate"
    WITHDRAWN = "withdrawn"  # a vote taken back before the decision
    AUTO_ROLLBACK = "auto-rollback"


class AuditEntry(_Row):
    json_fields: ClassVar[frozenset[str]] = frozenset({"approvers"})

    id: int | None = None
    at: datetime = Field(default_factory=utcnow)
    platform: str
    channel: str
    user: str  # `PLATFORM:ID`, or e.g. `holmbot` for what the bot does itself
    command: str  # the text as given
    action: str | None = None
    service: str | None = None
    approvers: tuple[str, ...] = ()
    outcome: AuditOutcome
    duration_ms: int | None = None
    error: str | None = None
    detail: str | None = None  # e.g. a refusal's reason
    request_id: str | None = None

    @classmethod
    def of(cls, invocation: Invocation, outcome: AuditOutcome, **fields: Any) -> AuditEntry:
        """An entry for `invocation`: its platform, channel, user and text."""
        return cls(
            platform=invocation.platform,
            channel=invocation.channel,
            user=invocation.user.key,
            command=truncate(invocation.text, AUDIT_COMMAND_CHARS),
            outcome=outcome,
            **fields,
        )


# --- the store ----------------------------------------------------------------------------


class StateError(Exception):
    """The state file cannot be used."""


class State:
    """The state file: `await State.open(path)`, coroutines for everything, `close()` at the end."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="holmbot-state")
        self._db: sqlite_utils.Database | None = None
        self._last_prune = 0.0
        self._closed = False

    @classmethod
    async def open(cls, path: Path, *, read_only: bool = False) -> State:
        """Open (creating it unless `read_only`) the state file at `path`."""
        state = cls(path, read_only=read_only)
        try:
            await state._run(state._connect)
        except BaseException:
            await state.close()
            raise
        return state

    @classmethod
    async def in_dir(cls, state_dir: Path, *, read_only: bool = False) -> State:
        return await cls.open(Path(state_dir) / DB_FILENAME, read_only=read_only)

    @property
    def closed(self) -> bool:
        """Whether the file has been closed (no more reads or writes)."""
        return self._closed

    async def close(self) -> None:
        if self._closed:
            return
        if self._db is not None:
            await self._run(self._db.conn.close)
            self._db = None
        self._closed = True
        self._executor.shutdown(wait=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- delivery ids ---------------------------------------------------------------------

    async def claim_delivery(
        self, platform: str, delivery_id: str, now: datetime | None = None
    ) -> bool:
        """True the first time this platform's delivery id is seen (ever, across restarts)."""
        return await self._run(self._claim_delivery, platform, delivery_id, now or utcnow())

    def _claim_delivery(self, platform: str, delivery_id: str, now: datetime) -> bool:
        db = self._conn()
        if time.monotonic() - self._last_prune > _PRUNE_EVERY_SECONDS:
            self._prune_deliveries(now - DELIVERY_TTL)
        with db.conn:
            cursor = db.execute(
                "INSERT OR IGNORE INTO deliveries (platform, delivery_id, at) VALUES (?, ?, ?)",
                [str(platform), delivery_id, _ts(now)],
            )
        return cursor.rowcount == 1

    async def prune_deliveries(self, older_than: datetime) -> int:
        """Forget delivery ids seen before `older_than`; returns how many."""
        return await self._run(self._prune_deliveries, older_than)

    def _prune_deliveries(self, older_than: datetime) -> int:
        self._last_prune = time.monotonic()
        with self._conn().conn as conn:
            return conn.execute("DELETE FROM deliveries WHERE at < ?", [_ts(older_than)]).rowcount

    # --- approval requests ----------------------------------------------------------------

    async def create_request(
        self,
        invocation: Invocation,
        command: BaseCommand,
        *,
        approvals_needed: int,
        approver_roles: Iterable[str],
        expires_at: datetime,
        now: datetime | None = None,
    ) -> ApprovalRequest:
        """Store a new pending request under a fresh short id."""
        user = invocation.user
        fields = {
            "user": user.key,
            "user_name": user.display_name,
            "groups": user.groups,
            "platform": user.platform,
            "channel": invocation.channel,
            "text": command_text(command),
            "action": command.action,
            "service": command.service,
            "command": command,
            "approvals_needed": approvals_needed,
            "approver_roles": tuple(approver_roles),
            "expires_at": expires_at,
            "created_at": now or utcnow(),
        }
        return await self._run(self._create_request, fields)

    def _create_request(self, fields: dict[str, Any]) -> ApprovalRequest:
        for attempt in range(100):
            length = _ID_LENGTH + attempt // 20  # longer ids if the short ones run out
            request_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))
            request = ApprovalRequest(id=request_id, **fields)
            try:
                self._insert("requests", request.to_row())
            except sqlite3.IntegrityError:
                continue
            return request
        raise StateError("cannot find a free request id")  # pragma: no cover

    async def get_request(self, request_id: str) -> ApprovalRequest | None:
        return await self._run(self._get_request, request_id.strip().lower())

    def _get_request(self, request_id: str) -> ApprovalRequest | None:
        rows = list(self._conn().table("requests").rows_where("id = ?", [request_id]))
        return ApprovalRequest.from_row(rows[0]) if rows else None

    async def pending_requests(
        self, platform: str | None = None, channel: str | None = None
    ) -> list[ApprovalRequest]:
        """Pending requests, oldest first; only those of one channel if given."""
        where, args = "status = ?", [RequestStatus.PENDING.value]
        if platform is not None:
            where, args = where + " AND platform = ?", [*args, str(platform)]
        if channel is not None:
            where, args = where + " AND channel = ?", [*args, channel]
        return await self._run(self._requests, where, args)

    async def requests_with_status(self, status: RequestStatus) -> list[ApprovalRequest]:
        """E.g. requests approved but never marked executed (the bot stopped in between)."""
        return await self._run(self._requests, "status = ?", [status.value])

    async def due_expiries(self, now: datetime) -> list[ApprovalRequest]:
        """Pending requests whose time is up at `now`."""
        return await self._run(
            self._requests,
            "status = ? AND expires_at <= ?",
            [RequestStatus.PENDING.value, _ts(now)],
        )

    async def next_expiry(self) -> datetime | None:
        """When the next pending request expires, to sleep until then."""
        rows = await self._run(
            self._query,
            "SELECT min(expires_at) AS at FROM requests WHERE status = ?",
            [RequestStatus.PENDING.value],
        )
        at = rows[0]["at"]
        return datetime.fromisoformat(at) if at else None

    def _requests(self, where: str, args: list[Any]) -> list[ApprovalRequest]:
        rows = self._conn().table("requests").rows_where(where, args, order_by="created_at, rowid")
        return [ApprovalRequest.from_row(row) for row in rows]

    async def set_request_status(
        self,
        request_id: str,
        status: RequestStatus,
        *,
        expect: Iterable[RequestStatus] = (RequestStatus.PENDING,),
        now: datetime | None = None,
    ) -> bool:
        """Compare-and-set: move to `status` only from one of `expect`; True if this call did."""
        expected = [s.value for s in expect]
        marks = ", ".join("?" for _ in expected)
        sql = (
            f"UPDATE requests SET status = ?, finished_at = ? WHERE id = ? AND status IN ({marks})"
        )
        args = [status.value, _ts(now or utcnow()), request_id, *expected]
        return await self._run(self._write, sql, args) == 1

    async def record_vote(
        self, request_id: str, user: str, approve: bool, now: datetime | None = None
    ) -> bool:
        """Store a vote; False (and nothing changes) if this user already voted on the request."""
        sql = "INSERT OR IGNORE INTO votes (request_id, user, approve, at) VALUES (?, ?, ?, ?)"
        args = [request_id, user, int(approve), _ts(now or utcnow())]
        return await self._run(self._write, sql, args) == 1

    async def remove_vote(self, request_id: str, user: str) -> bool:
        """Withdraw `user`'s vote on a pending request; False if there was none (or the
        request was already decided)."""
        sql = (
            "DELETE FROM votes WHERE request_id = ? AND user = ? AND EXISTS "
            "(SELECT 1 FROM requests WHERE id = ? AND status = 'pending')"
        )
        return await self._run(self._write, sql, [request_id, user, request_id]) == 1

    async def votes(self, request_id: str) -> list[Vote]:
        """The request's votes in the order they came."""
        return await self._run(self._votes, request_id)

    def _votes(self, request_id: str) -> list[Vote]:
        rows = (
            self._conn()
            .table("votes")
            .rows_where("request_id = ?", [request_id], order_by="at, rowid")
        )
        return [Vote.from_row(row) for row in rows]

    # --- tracked operations ---------------------------------------------------------------

    async def start_operation(
        self, operation: TrackedOperation, *, for_request: str | None = None
    ) -> TrackedOperation:
        """Record a started operation; with `for_request`, link that executed request to it in
        the same transaction, so no restart sees one without the other."""
        await self._run(self._start_operation, operation, for_request)
        return operation

    def _start_operation(self, operation: TrackedOperation, for_request: str | None) -> None:
        with self._conn().conn as conn:
            conn.execute(*_insert_statement("operations", operation.to_row()))
            if for_request is not None:
                conn.execute(
                    "UPDATE requests SET operation_id = ? WHERE id = ? AND status = ?",
                    [operation.id, for_request, RequestStatus.EXECUTED.value],
                )

    async def update_operation(
        self, operation_id: str, detail: dict[str, Any]
    ) -> TrackedOperation | None:
        """Merge keys into an operation's detail; None if it is unknown."""
        return await self._run(self._update_operation, operation_id, detail)

    def _update_operation(
        self, operation_id: str, detail: dict[str, Any]
    ) -> TrackedOperation | None:
        current = self._get_operation(operation_id)
        if current is None or not detail:
            return current
        updated = current.model_copy(update={"detail": {**current.detail, **detail}})
        self._write(
            "UPDATE operations SET detail = ? WHERE id = ?",
            [updated.to_row()["detail"], operation_id],
        )
        return updated

    # --- chat messages bound to requests and operations ---------------------------------------

    async def bind_message(
        self, ref: MessageRef, subject_kind: SubjectKind, subject_id: str, purpose: str
    ) -> BoundMessage:
        """Remember that the message `ref` shows `subject_kind` `subject_id` (e.g. a request)."""
        bound = BoundMessage(
            platform=ref.platform,
            channel=ref.channel,
            message_id=ref.message_id,
            thread=ref.thread,
            subject_kind=subject_kind,
            subject_id=subject_id,
            purpose=purpose,
            created_at=utcnow(),
        )
        await self._run(self._insert, "message_refs", bound.to_row(), "INSERT OR REPLACE")
        return bound

    async def find_message(
        self, platform: Platform | str, channel: str, message_id: str
    ) -> BoundMessage | None:
        """What the message at (platform, channel, message id) shows, if holmbot bound it."""
        sql = "SELECT * FROM message_refs WHERE platform = ? AND channel = ? AND message_id = ?"
        rows = await self._run(self._query, sql, [str(platform), channel, message_id])
        return BoundMessage.from_row(rows[0]) if rows else None

    async def messages_of(self, subject_kind: SubjectKind, subject_id: str) -> list[BoundMessage]:
        """Every message bound to a request or an operation, oldest first."""
        sql = (
            "SELECT * FROM message_refs WHERE subject_kind = ? AND subject_id = ?"
            " ORDER BY created_at, rowid"
        )
        rows = await self._run(self._query, sql, [subject_kind, subject_id])
        return [BoundMessage.from_row(row) for row in rows]

    async def finish_operation(
        self,
        operation_id: str,
        state: OperationState,
        *,
        message: str | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Running -> `state`, once; False if it was not running (or is unknown)."""
        sql = (
            "UPDATE operations SET state = ?, finished_at = ?, message = ? "
            "WHERE id = ? AND state = ?"
        )
        args = [state.value, _ts(now or utcnow()), message, operation_id, "running"]
        return await self._run(self._write, sql, args) == 1

    async def get_operation(self, operation_id: str) -> TrackedOperation | None:
        return await self._run(self._get_operation, operation_id)

    def _get_operation(self, operation_id: str) -> TrackedOperation | None:
        rows = list(self._conn().table("operations").rows_where("id = ?", [operation_id]))
        return TrackedOperation.from_row(rows[0]) if rows else None

    async def unfinished_operations(self) -> list[TrackedOperation]:
        """Operations still running when the bot stopped, oldest first: pick them up again."""
        return await self._run(self._operations, "state = ?", ["running"])

    async def running_operation_for(self, service: str) -> TrackedOperation | None:
        found = await self._run(self._operations, "state = ? AND service = ?", ["running", service])
        return found[-1] if found else None

    def _operations(self, where: str, args: list[Any]) -> list[TrackedOperation]:
        rows = (
            self._conn().table("operations").rows_where(where, args, order_by="started_at, rowid")
        )
        return [TrackedOperation.from_row(row) for row in rows]

    # --- audit ----------------------------------------------------------------------------

    async def audit(self, entry: AuditEntry) -> int:
        """Append an entry; returns its id."""
        row = entry.to_row()
        row.pop("id")
        return await self._run(self._insert, "audit", row)

    async def audit_entries(
        self,
        *,
        since: datetime | None = None,
        user: str | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        """Entries in time order: the newest `limit` of those since `since` (by `user`)."""
        clauses: list[str] = []
        args: list[Any] = []
        if since is not None:
            clauses, args = [*clauses, "at >= ?"], [*args, _ts(since)]
        if user is not None:
            clauses, args = [*clauses, "user = ?"], [*args, user]
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT * FROM audit {where} ORDER BY at DESC, id DESC"
        if limit is not None:
            sql, args = sql + " LIMIT ?", [*args, limit]
        rows = await self._run(self._query, sql, args)
        return [AuditEntry.from_row(row) for row in reversed(rows)]

    # --- the worker thread ----------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise StateError(f"state file {self.path} is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(fn, *args))

    def _conn(self) -> sqlite_utils.Database:
        if self._db is None:
            raise StateError(f"state file {self.path} is closed")
        return self._db

    def _connect(self) -> None:
        if self.read_only and not self.path.exists():
            raise StateError(f"no state file at {self.path}")
        try:
            if self.read_only:
                uri = f"{self.path.resolve().as_uri()}?mode=ro"
                self._db = sqlite_utils.Database(sqlite3.connect(uri, uri=True, timeout=5))
                self._db.execute("SELECT count(*) FROM audit")  # a holmbot state file?
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite_utils.Database(sqlite3.connect(self.path, timeout=5))
            self._db.enable_wal()
            self._db.execute("PRAGMA synchronous = NORMAL")
            migrate(self._db)
        except (sqlite3.DatabaseError, OSError, SchemaTooNew) as exc:
            if self._db is not None:
                self._db.conn.close()
                self._db = None
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise StateError(f"cannot use state file {self.path}: {why}") from None

    def _write(self, sql: str, args: list[Any]) -> int:
        with self._conn().conn as conn:
            return conn.execute(sql, args).rowcount

    def _insert(self, table: str, row: dict[str, Any], verb: str = "INSERT") -> int:
        """Insert one row (plain SQL: sqlite-utils' insert reads the schema every time)."""
        with self._conn().conn as conn:
            cursor = conn.execute(*_insert_statement(table, row, verb))
        return cursor.lastrowid or 0

    def _query(self, sql: str, args: list[Any]) -> list[dict[str, Any]]:
        return list(self._conn().query(sql, args))
