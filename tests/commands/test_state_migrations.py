"""State files written by earlier versions open with nothing lost; newer ones are refused.

`fixtures/state-v1.db` was written by holmbot's state code at schema version 1 (commit
e61c1fa's `State` API): two requests (one pending with a vote from another platform and a
message reference, one approved), two operations (one running with a progress message), three
audit entries and one handled delivery.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from commands.core.models import MessageRef
from commands.store.migrations import SCHEMA_VERSION
from commands.store.state import DB_FILENAME, OperationState, RequestStatus, State, StateError

FIXTURE = Path(__file__).parent / "fixtures" / "state-v1.db"


@pytest.fixture
def v1_dir(tmp_path: Path) -> Path:
    shutil.copy(FIXTURE, tmp_path / DB_FILENAME)
    return tmp_path


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA user_version").fetchone()[0]


async def test_a_version_1_file_keeps_every_request_operation_and_audit_entry(v1_dir: Path) -> None:
    assert user_version(v1_dir / DB_FILENAME) == 1
    state = await State.in_dir(v1_dir)
    try:
        (pending,) = await state.pending_requests()
        assert (pending.user, pending.text, pending.approvals_needed) == (
            "slack:U0ALICE",
            "deploy nova v2",
            2,
        )
        assert [(v.user, v.approve) for v in await state.votes(pending.id)] == [
            ("discord:4242", True)
        ]
        (approved,) = await state.requests_with_status(RequestStatus.APPROVED)
        assert approved.user == "console:bob"
        (running,) = await state.unfinished_operations()
        assert (running.id, running.detail) == ("op-running", {"revision_before": 3})
        done = await state.get_operation("op-done")
        assert (done.state, done.message) == (OperationState.SUCCEEDED, "echo restarted")
        assert [e.outcome for e in await state.audit_entries()] == [
            "approval-requested",
            "voted",
            "ok",
        ]
        assert not await state.claim_delivery("slack", "Ev0001")

        # The old single message_ref columns became bound messages on the same platform/channel.
        request_msg = await state.find_message("slack", "C0OPS", "1733043600.000100")
        assert (request_msg.subject_kind, request_msg.subject_id) == ("request", pending.id)
        assert [m.ref for m in await state.messages_of("operation", "op-running")] == [
            MessageRef(platform="slack", channel="C0OPS", message_id="1733043600.000200")
        ]
    finally:
        await state.close()
    assert user_version(v1_dir / DB_FILENAME) == SCHEMA_VERSION


async def test_a_migrated_file_opens_again_unchanged(v1_dir: Path) -> None:
    await (await State.in_dir(v1_dir)).close()
    state = await State.in_dir(v1_dir)
    try:
        assert len(await state.messages_of("request", (await state.pending_requests())[0].id)) == 1
    finally:
        await state.close()


async def test_a_file_from_a_newer_holmbot_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StateError, match="newer than this holmbot"):
        await State.in_dir(tmp_path)
    assert user_version(path) == SCHEMA_VERSION + 1
