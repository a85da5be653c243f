"""The approval engine against a real state file: votes, races, expiry, cancel, restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from commands.access.approvals import Approvals, VoteOutcome, expired_reply
from commands.access.policy import AccessConfig, ApprovalRule, Policy
from commands.core.models import ActionStyle, Invocation, Tone, User
from commands.core.parser import parse_command
from commands.store.state import AuditOutcome, RequestStatus, State
from sandbox.demo_policy import demo_access

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ALICE = User.parse("console:alice")
BOB = User.parse("console:bob")
CAROL = User.parse("console:carol")
DAVE = User.parse("console:dave")
OPERATOR = User.parse("console:operator")
ONE_ADMIN = ApprovalRule()
TWO_ADMINS = ApprovalRule(approvals=2, approvers=("admin",), expires_after=600)


class Clock:
    """Settable time for expiry."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def policy() -> Policy:
    return Policy(AccessConfig.model_validate(demo_access()), protected=["postgres"])


@pytest.fixture
async def state(tmp_path: Path) -> AsyncIterator[State]:
    opened = await State.in_dir(tmp_path)
    yield opened
    await opened.close()


@pytest.fixture
def approvals(policy: Policy, state: State, clock: Clock) -> Approvals:
    return Approvals(policy, state, clock=clock)


def asked(text: str, user: User = ALICE, channel: str = "ops") -> Invocation:
    return Invocation(user=user, channel=channel, text=text)


async def open_deploy(approvals: Approvals, rule: ApprovalRule = ONE_ADMIN, user: User = ALICE):
    text = "deploy postgres v16"
    return await approvals.open_request(asked(text, user), parse_command(text), rule)


async def outcomes(state: State) -> list[tuple[str, str, str]]:
    return [(e.user, e.action, e.outcome) for e in await state.audit_entries()]


async def test_open_request_says_what_who_how(approvals: Approvals, state: State) -> None:
    opened = await open_deploy(approvals)
    request, reply = opened.request, opened.reply
    assert request.status is RequestStatus.PENDING
    assert reply.tone is Tone.WARNING
    assert reply.title == f"approval needed for deploy postgres v16 (request {request.id})"
    text = reply.text
    assert "will run: deploy postgres v16 as console:alice" in text
    assert "asked by: console:alice" in text
    assert "approvers: 1 approval from admin (console:bob, console:dave, console:operator)" in text
    assert "expires: in 1h (2025-03-01 13:00 UTC)" in text
    assert [(a.label, a.command, a.style) for a in reply.actions] == [
        ("Approve", f"approve {request.id}", ActionStyle.PRIMARY),
        ("Deny", f"deny {request.id}", ActionStyle.DANGER),
    ]
    [entry] = await state.audit_entries()
    assert (entry.user, entry.command, entry.action, entry.service) == (
        "console:alice",
        "deploy postgres v16",
        "deploy",
        "postgres",
    )
    assert entry.outcome is AuditOutcome.APPROVAL_REQUESTED
    assert entry.request_id == request.id
    assert entry.detail == "needs 1 approval from admin"


async def test_approved_by_an_admin_carries_the_original_invocation(
    approvals: Approvals, state: State
) -> None:
    request = (await open_deploy(approvals)).request
    result = await approvals.vote(BOB, request.id, approve=True)
    assert result.outcome is VoteOutcome.APPROVED and result.execute
    assert result.invocation.user == ALICE  # runs as the requester
    assert result.invocation.channel == "ops"
    assert result.command == parse_command("deploy postgres v16")
    assert result.approvers == ("console:bob",)
    assert result.reply.title == f"request {request.id} approved by <@console:bob>"
    assert (await state.get_request(request.id)).status is RequestStatus.APPROVED
    assert await approvals.mark_executed(request.id)
    assert not await approvals.mark_executed(request.id)
    assert (await state.get_request(request.id)).status is RequestStatus.EXECUTED
    late = await approvals.vote(DAVE, request.id, approve=True)
    assert late.outcome is VoteOutcome.FINISHED and not late.execute
    assert late.reply.title == f"request {request.id} is already executed; nothing changed"
    entries = await state.audit_entries()
    assert entries[1].outcome is AuditOutcome.APPROVED
    assert entries[1].approvers == ("console:bob",)
    assert entries[1].command == f"approve {request.id}"
    assert entries[1].service == "postgres" and entries[1].channel == "ops"
    assert entries[1].detail == "deploy postgres v16"  # what was approved
    assert entries[2].outcome is AuditOutcome.REFUSED


async def test_self_approval_is_refused_and_changes_nothing(
    approvals: Approvals, state: State
) -> None:
    request = (await open_deploy(approvals, user=BOB)).request  # an admin asking
    result = await approvals.vote(BOB, request.id, approve=True)
    assert result.outcome is VoteOutcome.REFUSED and not result.execute
    assert result.reply.tone is Tone.ERROR
    assert result.reply.title == f"<@console:bob> asked for {request.id} and cannot approve it"
    assert await state.votes(request.id) == []
    assert (await state.get_request(request.id)).status is RequestStatus.PENDING
    own_deny = await approvals.vote(BOB, request.id, approve=False)
    assert own_deny.outcome is VoteOutcome.REFUSED
    assert f"cancel it with: cancel {request.id}" in own_deny.reply.title
    # another admin still can
    assert (await approvals.vote(DAVE, request.id, approve=True)).execute
    assert [o for _, _, o in await outcomes(state)] == [
        "approval-requested",
        "refused",
        "refused",
        "approved",
    ]


async def test_a_non_approver_is_refused_with_the_reason(
    approvals: Approvals, state: State
) -> None:
    request = (await open_deploy(approvals)).request
    for user, held in ((CAROL, "viewer"), (User.parse("console:zed"), "no role")):
        result = await approvals.vote(user, request.id, approve=True)
        assert result.outcome is VoteOutcome.REFUSED
        assert result.reply.title == (
            f"approve {request.id} needs the role admin; <@{user.key}> has {held}"
        )
    deny = await approvals.vote(CAROL, request.id, approve=False)
    assert deny.outcome is VoteOutcome.REFUSED  # a deny from a non-approver does not reject
    assert await state.votes(request.id) == []
    assert (await state.get_request(request.id)).status is RequestStatus.PENDING
    refused = [e for e in await state.audit_entries() if e.outcome is AuditOutcome.REFUSED]
    assert [e.user for e in refused] == ["console:carol", "console:zed", "console:carol"]
    assert refused[0].detail.startswith(f"approve {request.id} needs the role admin")


async def test_two_approvals_from_distinct_users(approvals: Approvals, state: State) -> None:
    request = (await open_deploy(approvals, TWO_ADMINS)).request
    assert "0/2 admin" in (await approvals.pending()).text
    first = await approvals.vote(BOB, request.id, approve=True)
    assert first.outcome is VoteOutcome.RECORDED and not first.execute
    assert first.reply.title == f"approval 1 of 2 for {request.id} recorded (<@console:bob>)"
    again = await approvals.vote(BOB, request.id, approve=True)
    assert again.outcome is VoteOutcome.DUPLICATE
    assert (
        again.reply.title
        == f"<@console:bob> already approved {request.id}; a vote counts once per person"
    )
    assert (await state.get_request(request.id)).status is RequestStatus.PENDING
    second = await approvals.vote(DAVE, request.id, approve=True)
    assert second.outcome is VoteOutcome.APPROVED
    assert second.approvers == ("console:bob", "console:dave")
    assert [o for _, _, o in await outcomes(state)] == [
        "approval-requested",
        "voted",
        "duplicate",
        "approved",
    ]


async def test_exactly_once_under_two_concurrent_final_votes(
    approvals: Approvals, state: State
) -> None:
    single = (await open_deploy(approvals)).request
    results = await asyncio.gather(
        approvals.vote(BOB, single.id, approve=True),
        approvals.vote(DAVE, single.id, approve=True),
        approvals.vote(OPERATOR, single.id, approve=True),
    )
    assert sum(r.execute for r in results) == 1
    assert (await state.get_request(single.id)).status is RequestStatus.APPROVED

    double = (await open_deploy(approvals, TWO_ADMINS)).request
    await approvals.vote(BOB, double.id, approve=True)
    results = await asyncio.gather(
        approvals.vote(DAVE, double.id, approve=True),
        approvals.vote(OPERATOR, double.id, approve=True),
    )
    assert [r.execute for r in results].count(True) == 1
    approved = [
        e
        for e in await state.audit_entries()
        if e.outcome is AuditOutcome.APPROVED and e.request_id in {single.id, double.id}
    ]
    assert sorted(e.request_id for e in approved) == sorted([single.id, double.id])


async def test_one_deny_rejects(approvals: Approvals, state: State) -> None:
    request = (await open_deploy(approvals, TWO_ADMINS)).request
    await approvals.vote(BOB, request.id, approve=True)
    denied = await approvals.vote(DAVE, request.id, approve=False)
    assert denied.outcome is VoteOutcome.DENIED and not denied.execute
    assert denied.reply.title == f"request {request.id} denied by <@console:dave>"
    assert (await state.get_request(request.id)).status is RequestStatus.DENIED
    late = await approvals.vote(OPERATOR, request.id, approve=True)
    assert late.outcome is VoteOutcome.FINISHED
    assert late.reply.title == f"request {request.id} is already denied; nothing changed"
    entries = await state.audit_entries()
    assert entries[2].outcome is AuditOutcome.DENIED and entries[2].user == "console:dave"


async def test_expiry(approvals: Approvals, state: State, clock: Clock) -> None:
    short = ApprovalRule(expires_after=300)
    request = (await open_deploy(approvals, short)).request
    other = (await open_deploy(approvals)).request
    clock.now = T0 + timedelta(seconds=299)
    assert await approvals.expire_due() == []
    clock.now = T0 + timedelta(seconds=300)
    [expired] = await approvals.expire_due()
    assert expired.id == request.id and expired.status is RequestStatus.EXPIRED
    assert await approvals.expire_due() == []  # once
    assert expired_reply(expired).title == f"request {request.id} expired"
    assert "nothing ran" in expired_reply(expired).text
    vote = await approvals.vote(BOB, request.id, approve=True)
    assert vote.outcome is VoteOutcome.FINISHED
    assert vote.reply.title == f"request {request.id} is already expired; nothing changed"
    # a vote after the deadline, before the expiry sweep ran
    clock.now = T0 + timedelta(hours=2)
    late = await approvals.vote(BOB, other.id, approve=True)
    assert late.outcome is VoteOutcome.EXPIRED and not late.execute
    assert late.reply.title.startswith(f"request {other.id} expired 1h ago")
    assert (await state.get_request(other.id)).status is RequestStatus.EXPIRED
    assert await approvals.expire_due() == []
    expiries = [e for e in await state.audit_entries() if e.outcome is AuditOutcome.EXPIRED]
    assert [(e.request_id, e.user) for e in expiries] == [
        (request.id, "console:alice"),
        (other.id, "console:alice"),
    ]


async def test_cancel_by_requester_or_admin_only(approvals: Approvals, state: State) -> None:
    request = (await open_deploy(approvals)).request
    refused = await approvals.cancel(CAROL, request.id)
    assert not refused.cancelled
    assert refused.reply.title == (
        f"only <@console:alice> (who asked) or an admin can cancel {request.id}"
    )
    done = await approvals.cancel(ALICE, request.id)
    assert done.cancelled and done.request.status is RequestStatus.CANCELLED
    assert done.reply.title == f"request {request.id} cancelled by <@console:alice>"
    assert not (await approvals.cancel(ALICE, request.id)).cancelled
    assert (await approvals.vote(BOB, request.id, approve=True)).outcome is VoteOutcome.FINISHED
    by_admin = (await open_deploy(approvals)).request
    assert (await approvals.cancel(DAVE, by_admin.id)).cancelled
    assert not (await approvals.cancel(ALICE, "zzzz")).cancelled
    assert [o for _, a, o in await outcomes(state) if a == "cancel"] == [
        "refused",
        "cancelled",
        "refused",
        "cancelled",
        "refused",
    ]


async def test_unknown_request(approvals: Approvals, state: State) -> None:
    result = await approvals.vote(BOB, "zzzz", approve=True)
    assert result.outcome is VoteOutcome.UNKNOWN
    assert result.reply.title == "no approval request zzzz; approvals lists the pending ones"
    [entry] = await state.audit_entries()
    assert (entry.outcome, entry.detail, entry.request_id) == ("refused", "unknown request", "zzzz")


async def test_pending_lists_requests_per_channel(approvals: Approvals, clock: Clock) -> None:
    assert (await approvals.pending()).title == "no pending approval requests"
    first = (await open_deploy(approvals, TWO_ADMINS)).request
    text = "backup restore b-42"
    restore = await approvals.open_request(
        asked(text, channel="dba"), parse_command(text), ONE_ADMIN
    )
    await approvals.vote(BOB, first.id, approve=True)
    clock.now = T0 + timedelta(minutes=4)
    everything = await approvals.pending()
    assert everything.title == "2 pending approval requests"
    assert everything.table.columns == ["ID", "COMMAND", "ASKED BY", "APPROVALS", "EXPIRES IN"]
    assert everything.table.rows == [
        [first.id, "deploy postgres v16", "<@console:alice>", "1/2 admin", "6m"],
        [restore.request.id, text, "<@console:alice>", "0/1 admin", "56m"],
    ]
    one_channel = await approvals.pending("console", "dba")
    assert [row[0] for row in one_channel.table.rows] == [restore.request.id]


async def test_pending_request_is_approvable_after_a_restart(
    tmp_path: Path, policy: Policy, clock: Clock
) -> None:
    state = await State.in_dir(tmp_path)
    before = Approvals(policy, state, clock=clock)
    request = (await open_deploy(before, TWO_ADMINS)).request
    await before.vote(BOB, request.id, approve=True)
    await state.close()

    state = await State.in_dir(tmp_path)
    try:
        after = Approvals(policy, state, clock=clock)
        assert "1/2 admin" in (await after.pending()).text
        duplicate = await after.vote(BOB, request.id, approve=True)
        assert duplicate.outcome is VoteOutcome.DUPLICATE  # the vote survived too
        result = await after.vote(DAVE, request.id, approve=True)
        assert result.execute and result.invocation.user == ALICE
        assert result.command == parse_command("deploy postgres v16")
        # expiries still fire after a restart
        other = (await open_deploy(after)).request
    finally:
        await state.close()
    state = await State.in_dir(tmp_path)
    try:
        clock.now = T0 + timedelta(hours=1)
        expired = await Approvals(policy, state, clock=clock).expire_due()
        assert [r.id for r in expired] == [other.id]
    finally:
        await state.close()


async def test_groups_are_checked_for_approvers(state: State, clock: Clock) -> None:
    policy = Policy(
        AccessConfig.model_validate(
            {"roles": {"admin": {"slack_groups": ["S0ADMINS"]}, "deployer": {"users": ["*"]}}}
        )
    )
    approvals = Approvals(policy, state, clock=clock)
    asker = User.parse("slack:U1")
    request = (await open_deploy(approvals, user=asker)).request
    assert "approvers: 1 approval from admin\n" in (await open_deploy(approvals)).reply.text + "\n"
    outsider = await approvals.vote(User.parse("slack:U2"), request.id, approve=True)
    assert outsider.outcome is VoteOutcome.REFUSED
    admin = User.parse("slack:U3", groups=("S0ADMINS",))
    assert (await approvals.vote(admin, request.id, approve=True, channel="C0OPS")).execute
    entry = (await state.audit_entries())[-1]
    assert (entry.platform, entry.channel, entry.user) == ("slack", "C0OPS", "slack:U3")
