"""The state file: requests, votes, operations, audit and delivery ids, across reopening."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from commands.core.models import Invocation, MessageRef, User
from commands.core.parser import DeployCommand, parse_command
from commands.store.state import (
    DB_FILENAME,
    AuditEntry,
    AuditOutcome,
    OperationState,
    RequestStatus,
    State,
    StateError,
    TrackedOperation,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ALICE = User.parse("console:alice", groups=("S1",))


def invocation(text: str = "deploy nova v2", user: User = ALICE) -> Invocation:
    return Invocation(user=user, channel="ops", text=text, delivery_id="d1")


@pytest.fixture
async def state(tmp_path: Path) -> AsyncIterator[State]:
    opened = await State.in_dir(tmp_path)
    yield opened
    await opened.close()


async def new_request(state: State, now: datetime = T0, text: str = "deploy nova v2"):
    return await state.create_request(
        invocation(text),
        parse_command(text),
        approvals_needed=2,
        approver_roles=["admin", "sre"],
        expires_at=now + timedelta(hours=1),
        now=now,
    )


async def test_file_is_sqlite_in_wal_mode(state: State, tmp_path: Path) -> None:
    assert state.path == tmp_path / DB_FILENAME
    with sqlite3.connect(state.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"requests", "votes", "operations", "audit", "deliveries"} <= tables


async def test_calls_run_on_one_worker_thread(state: State) -> None:
    names = await asyncio.gather(
        *(state._run(lambda: threading.current_thread().name) for _ in range(5))
    )
    assert len(set(names)) == 1
    assert names[0].startswith("holmbot-state")
    assert names[0] != threading.current_thread().name


async def test_request_round_trip_and_short_ids(state: State) -> None:
    request = await new_request(state)
    assert len(request.id) == 4 and request.id.isalnum() and request.id.islower()
    stored = await state.get_request(request.id.upper())  # ids are case-insensitive
    assert stored == request
    assert stored.command == DeployCommand(service="nova", tag="v2")
    assert stored.status is RequestStatus.PENDING
    assert (stored.user, stored.groups, stored.platform, stored.channel) == (
        "console:alice",
        ("S1",),
        "console",
        "ops",
    )
    assert (stored.action, stored.service, stored.text) == ("deploy", "nova", "deploy nova v2")
    assert stored.approver_roles == ("admin", "sre")
    again = stored.invocation()
    assert again.user == ALICE and again.channel == "ops" and again.text == "deploy nova v2"
    assert await state.get_request("zzzz") is None
    ids = {(await new_request(state)).id for _ in range(50)}
    assert len(ids) == 50


async def test_pending_requests_by_channel_and_expiry(state: State) -> None:
    first = await new_request(state, T0)
    second = await new_request(state, T0 + timedelta(minutes=10), "restart nova")
    other = await state.create_request(
        Invocation(user=ALICE, channel="elsewhere", text="scale nova 2"),
        parse_command("scale nova 2"),
        approvals_needed=1,
        approver_roles=["admin"],
        expires_at=T0 + timedelta(minutes=5),
        now=T0,
    )
    assert [r.id for r in await state.pending_requests()] == [first.id, other.id, second.id]
    assert [r.id for r in await state.pending_requests("console", "ops")] == [first.id, second.id]
    assert await state.next_expiry() == T0 + timedelta(minutes=5)
    assert await state.due_expiries(T0 + timedelta(minutes=4)) == []
    due = await state.due_expiries(T0 + timedelta(hours=1))
    assert [r.id for r in due] == [first.id, other.id]


async def test_status_changes_are_compare_and_set(state: State) -> None:
    request = await new_request(state)
    assert await state.set_request_status(request.id, RequestStatus.APPROVED)
    assert not await state.set_request_status(request.id, RequestStatus.APPROVED)
    assert not await state.set_request_status(request.id, RequestStatus.DENIED)
    assert not await state.set_request_status("nope", RequestStatus.APPROVED)
    executed = RequestStatus.EXECUTED
    assert await state.set_request_status(request.id, executed, expect=[RequestStatus.APPROVED])
    assert not await state.set_request_status(request.id, executed, expect=[RequestStatus.APPROVED])
    stored = await state.get_request(request.id)
    assert stored.status is RequestStatus.EXECUTED and stored.finished_at is not None
    assert await state.requests_with_status(RequestStatus.EXECUTED) == [stored]


async def test_concurrent_compare_and_set_has_one_winner(state: State) -> None:
    request = await new_request(state)
    results = await asyncio.gather(
        *(state.set_request_status(request.id, RequestStatus.APPROVED) for _ in range(10))
    )
    assert results.count(True) == 1


async def test_votes_are_unique_per_user(state: State) -> None:
    request = await new_request(state)
    assert await state.record_vote(request.id, "console:bob", True, T0)
    assert not await state.record_vote(request.id, "console:bob", False, T0)
    assert await state.record_vote(request.id, "console:dave", False, T0 + timedelta(seconds=1))
    votes = await state.votes(request.id)
    assert [(v.user, v.approve) for v in votes] == [("console:bob", True), ("console:dave", False)]


async def test_messages_are_bound_and_found_by_platform_channel_and_id(tmp_path: Path) -> None:
    state = await State.in_dir(tmp_path)
    request = await new_request(state)
    posted = MessageRef(platform="slack", channel="C0OPS", message_id="1712345678.000200")
    echoed = MessageRef(platform="discord", channel="42", message_id="99", thread="7")
    await state.bind_message(posted, "request", request.id, "request")
    await state.bind_message(echoed, "request", request.id, "request")
    await state.bind_message(
        MessageRef(platform="slack", channel="C0OPS", message_id="1.2"),
        "operation",
        "op-1",
        "progress",
    )
    await state.close()

    reopened = await State.in_dir(tmp_path)
    try:
        found = await reopened.find_message("slack", "C0OPS", "1712345678.000200")
        assert (found.subject_kind, found.subject_id, found.ref) == ("request", request.id, posted)
        assert [m.ref for m in await reopened.messages_of("request", request.id)] == [
            posted,
            echoed,
        ]
        # The same message id on another platform or channel is another message.
        assert await reopened.find_message("discord", "C0OPS", "1712345678.000200") is None
        assert await reopened.find_message("slack", "C0OTHER", "1712345678.000200") is None
        assert [m.purpose for m in await reopened.messages_of("operation", "op-1")] == ["progress"]
    finally:
        await reopened.close()


async def test_everything_survives_reopening(tmp_path: Path) -> None:
    state = await State.in_dir(tmp_path)
    request = await new_request(state)
    await state.record_vote(request.id, "console:bob", True, T0)
    await state.start_operation(operation("op-1", "nova"))
    await state.audit(AuditEntry.of(invocation(), AuditOutcome.APPROVAL_REQUESTED, at=T0))
    assert await state.claim_delivery("slack", "Ev1", T0)
    await state.close()

    reopened = await State.in_dir(tmp_path)
    try:
        assert (await reopened.pending_requests())[0] == request
        assert [v.user for v in await reopened.votes(request.id)] == ["console:bob"]
        assert [op.id for op in await reopened.unfinished_operations()] == ["op-1"]
        assert [e.outcome for e in await reopened.audit_entries()] == ["approval-requested"]
        assert not await reopened.claim_delivery("slack", "Ev1", T0)
        assert await reopened.claim_delivery("discord", "Ev1", T0)  # per platform
    finally:
        await reopened.close()


async def test_claim_delivery_is_atomic_under_concurrency(state: State) -> None:
    results = await asyncio.gather(*(state.claim_delivery("slack", "Ev7") for _ in range(20)))
    assert results.count(True) == 1


async def test_old_delivery_ids_are_pruned(state: State) -> None:
    assert await state.claim_delivery("slack", "old", T0)
    assert await state.claim_delivery("slack", "new", T0 + timedelta(days=2))
    assert await state.prune_deliveries(T0 + timedelta(days=1)) == 1
    assert await state.claim_delivery("slack", "old", T0 + timedelta(days=2))
    assert not await state.claim_delivery("slack", "new", T0 + timedelta(days=2))


def operation(op_id: str, service: str | None, kind: str = "deploy") -> TrackedOperation:
    return TrackedOperation(
        id=op_id,
        kind=kind,
        service=service,
        summary=f"{kind} {service}:v2",
        started_by="console:alice",
        platform="console",
        channel="ops",
        started_at=T0,
        detail={"revision_before": 3},
    )


async def test_operations_lifecycle(state: State) -> None:
    await state.start_operation(operation("op-1", "nova"))
    await state.start_operation(operation("op-2", None, "backup.create"))
    running = await state.running_operation_for("nova")
    assert running is not None and running.detail == {"revision_before": 3}
    updated = await state.update_operation("op-1", detail={"revision": 4})
    assert updated.detail == {"revision_before": 3, "revision": 4}
    assert await state.get_operation("op-1") == updated
    assert await state.finish_operation("op-1", OperationState.SUCCEEDED, message="done in 12s")
    assert not await state.finish_operation("op-1", OperationState.FAILED)
    done = await state.get_operation("op-1")
    assert done.state is OperationState.SUCCEEDED and done.message == "done in 12s"
    assert done.finished_at is not None
    assert await state.running_operation_for("nova") is None
    assert [op.id for op in await state.unfinished_operations()] == ["op-2"]
    assert await state.update_operation("nope", {"revision": 5}) is None


async def test_audit_filters_and_order(state: State) -> None:
    bob = User.parse("console:bob")
    for minute, user, outcome in [
        (0, ALICE, AuditOutcome.REFUSED),
        (1, bob, AuditOutcome.OK),
        (2, ALICE, AuditOutcome.OK),
        (3, bob, AuditOutcome.FAILED),
    ]:
        await state.audit(
            AuditEntry.of(
                invocation(user=user),
                outcome,
                at=T0 + timedelta(minutes=minute),
                action="deploy",
                service="nova",
                approvers=("console:dave",),
                duration_ms=1200,
                error="boom" if outcome is AuditOutcome.FAILED else None,
            )
        )
    everything = await state.audit_entries()
    assert [e.at.minute for e in everything] == [0, 1, 2, 3]
    assert everything[0].approvers == ("console:dave",) and everything[3].error == "boom"
    assert [e.at.minute for e in await state.audit_entries(limit=2)] == [2, 3]
    assert [e.at.minute for e in await state.audit_entries(user="console:alice")] == [0, 2]
    since = await state.audit_entries(since=T0 + timedelta(minutes=2))
    assert [e.at.minute for e in since] == [2, 3]


async def test_read_only_state_reads_but_never_writes(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="no state file"):
        await State.in_dir(tmp_path, read_only=True)
    writer = await State.in_dir(tmp_path)
    await writer.audit(AuditEntry.of(invocation(), AuditOutcome.OK, at=T0))
    reader = await State.in_dir(tmp_path, read_only=True)
    try:
        assert len(await reader.audit_entries()) == 1
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await reader.audit(AuditEntry.of(invocation(), AuditOutcome.OK))
        await writer.audit(AuditEntry.of(invocation(), AuditOutcome.FAILED, at=T0))
        assert len(await reader.audit_entries()) == 2  # sees the writer's new rows
    finally:
        await reader.close()
        await writer.close()


async def test_a_file_that_is_not_sqlite_is_reported(tmp_path: Path) -> None:
    (tmp_path / DB_FILENAME).write_text("not a database, just text " * 100)
    with pytest.raises(StateError, match="cannot use state file"):
        await State.in_dir(tmp_path)


async def test_closed_state_refuses_calls(tmp_path: Path) -> None:
    state = await State.in_dir(tmp_path)
    await state.close()
    await state.close()  # twice is fine
    with pytest.raises(StateError, match="closed"):
        await state.claim_delivery("slack", "x")
