"""The approval engine: open requests, count votes, expire and cancel, all audited.

Rules: the requester never counts as an approver; a voter without an approver role is refused
and nothing changes; each user votes once per request; one deny from an eligible approver
rejects; the request becomes `approved` exactly once, when the last needed distinct approval
arrives, and that vote's result carries the original invocation for the layer to run as the
requester. A request can be cancelled by its requester or by an admin.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel

from commands.access.policy import ADMIN, ApprovalRule, Policy, roles_text
from commands.core.formatting import age, human_seconds
from commands.core.models import (
    Action,
    ActionStyle,
    Invocation,
    Reply,
    ReplyField,
    Table,
    Tone,
    User,
    mention,
)
from commands.core.parser import BaseCommand, Command
from commands.store.state import (
    ApprovalRequest,
    AuditEntry,
    AuditOutcome,
    RequestStatus,
    State,
    utcnow,
)

Clock = Callable[[], datetime]


class OpenedRequest(BaseModel):
    """A new pending request and the reply announcing it."""

    request: ApprovalRequest
    reply: Reply


class VoteOutcome(StrEnum):
    RECORDED = "recorded"  # counted; more approvals needed
    APPROVED = "approved"  # this vote completed the request: run it now
    DENIED = "denied"
    REFUSED = "refused"  # the requester, or no approver role: nothing changed
    DUPLICATE = "duplicate"  # this user (or person) already voted
    WITHDRAWN = "withdrawn"  # a vote taken back
    EXPIRED = "expired"
    UNKNOWN = "unknown"
    FINISHED = "finished"  # already approved, denied, cancelled or executed


class VoteResult(BaseModel):
    """What a vote did. When `outcome` is APPROVED, run `command` as `invocation`."""

    outcome: VoteOutcome
    reply: Reply
    request: ApprovalRequest | None = None
    approvers: tuple[str, ...] = ()  # the distinct approvals so far
    invocation: Invocation | None = None  # only when APPROVED
    command: Command | None = None  # only when APPROVED

    @property
    def execute(self) -> bool:
        return self.outcome is VoteOutcome.APPROVED


class CancelResult(BaseModel):
    cancelled: bool
    reply: Reply
    request: ApprovalRequest | None = None


class Approvals:
    """Approval requests over a policy and the state file."""

    def __init__(
        self,
        policy: Policy,
        state: State,
        *,
        clock: Clock = utcnow,
        audit: Callable[[AuditEntry], Awaitable[object]] | None = None,
    ) -> None:
        """`audit` writes one entry (default: to the state file's audit log)."""
        self.policy = policy
        self.state = state
        self.clock = clock
        self.audit = audit or state.audit

    async def open_request(
        self, invocation: Invocation, command: BaseCommand, rule: ApprovalRule
    ) -> OpenedRequest:
        """Store a pending request for `command` and say how to approve it (audited)."""
        now = self.clock()
        request = await self.state.create_request(
            invocation,
            command,
            approvals_needed=rule.approvals,
            approver_roles=rule.approvers,
            expires_at=now + timedelta(seconds=rule.expires_after),
            now=now,
        )
        await self.audit(
            AuditEntry.of(
                invocation,
                AuditOutcome.APPROVAL_REQUESTED,
                at=now,
                action=command.action,
                service=command.service,
                request_id=request.id,
                detail=f"needs {rule.describe()}",
            )
        )
        return OpenedRequest(request=request, reply=await self.request_view(request))

    async def vote(
        self, user: User, request_id: str, approve: bool, *, channel: str | None = None
    ) -> VoteResult:
        """One approve or deny from `user` (a command, reaction or button; audited)."""
        verb = "approve" if approve else "deny"
        now = self.clock()
        request = await self.state.get_request(request_id)
        audit = _Auditor(self.audit, user, verb, request_id, channel, request, now)
        if request is None:
            reply = _error(f"no approval request {request_id}; approvals lists the pending ones")
            await audit(AuditOutcome.REFUSED, detail="unknown request")
            return VoteResult(outcome=VoteOutcome.UNKNOWN, reply=reply)
        if request.status is not RequestStatus.PENDING:
            return await self._finished(request, audit)
        if now >= request.expires_at:
            return await self._expired_on_vote(request, audit)
        if self.policy.person(user.key) == self.policy.person(request.user):
            account = "" if user.key == request.user else f" (as {mention(request.user)})"
            reason = f"{mention(user.key)} asked for {request.id}{account} and cannot {verb} it"
            hint = "; cancel it with: cancel " + request.id if not approve else ""
            await audit(AuditOutcome.REFUSED, detail=reason)
            return VoteResult(
                outcome=VoteOutcome.REFUSED, reply=_error(reason + hint), request=request
            )
        if not self.policy.can_approve(user, _rule_of(request)):
            held = ", ".join(sorted(self.policy.roles_of(user))) or "no role"
            reason = (
                f"{verb} {request.id} needs the role {roles_text(request.approver_roles)}; "
                f"{mention(user.key)} has {held}"
            )
            await audit(AuditOutcome.REFUSED, detail=reason)
            return VoteResult(outcome=VoteOutcome.REFUSED, reply=_error(reason), request=request)
        if await self._voted_as_other_account(request.id, user) or not await self.state.record_vote(
            request.id, user.key, approve, now
        ):
            return await self._duplicate(request, user, audit)
        if not approve:
            return await self._deny(request, user, audit)
        return await self._approve(request, user, audit)

    async def _voted_as_other_account(self, request_id: str, user: User) -> bool:
        person = self.policy.person(user.key)
        return any(
            self.policy.person(vote.user) == person and vote.user != user.key
            for vote in await self.state.votes(request_id)
        )

    async def _approve(self, request: ApprovalRequest, user: User, audit: _Auditor) -> VoteResult:
        approvers = await self._approvers(request.id)
        if len(approvers) < request.approvals_needed:
            missing = request.approvals_needed - len(approvers)
            await audit(AuditOutcome.VOTED, approvers=approvers)
            reply = Reply(
                title=(
                    f"approval {len(approvers)} of {request.approvals_needed} for {request.id} "
                    f"recorded ({mention(user.key)})"
                ),
                lines=[
                    f"waiting for {missing} more from {roles_text(request.approver_roles)}: "
                    f"{request.text}"
                ],
            )
            return VoteResult(
                outcome=VoteOutcome.RECORDED, reply=reply, request=request, approvers=approvers
            )
        if not await self.state.set_request_status(
            request.id, RequestStatus.APPROVED, now=audit.now
        ):  # another vote completed it (or it was cancelled) in the meantime
            await audit(AuditOutcome.VOTED, approvers=approvers)
            current = await self.state.get_request(request.id) or request
            return VoteResult(
                outcome=VoteOutcome.FINISHED,
                reply=Reply(
                    title=f"{mention(user.key)}'s approval of {request.id} was recorded; "
                    f"the request is already {current.status}",
                ),
                request=current,
                approvers=approvers,
            )
        await audit(AuditOutcome.APPROVED, approvers=approvers)
        approved = request.model_copy(
            update={"status": RequestStatus.APPROVED, "finished_at": audit.now}
        )
        reply = Reply(
            title=f"request {request.id} approved by {_mentions(approvers)}",
            tone=Tone.SUCCESS,
            lines=[f"running {request.text} as {mention(request.user)}"],
        )
        return VoteResult(
            outcome=VoteOutcome.APPROVED,
            reply=reply,
            request=approved,
            approvers=approvers,
            invocation=request.invocation(),
            command=request.command,
        )

    async def _deny(self, request: ApprovalRequest, user: User, audit: _Auditor) -> VoteResult:
        if not await self.state.set_request_status(request.id, RequestStatus.DENIED, now=audit.now):
            current = await self.state.get_request(request.id) or request
            return await self._finished(current, audit)
        await audit(AuditOutcome.DENIED, approvers=await self._approvers(request.id))
        reply = Reply(
            title=f"request {request.id} denied by {mention(user.key)}",
            tone=Tone.WARNING,
            lines=[f"{request.text} (asked by {mention(request.user)}) will not run"],
        )
        denied = request.model_copy(
            update={"status": RequestStatus.DENIED, "finished_at": audit.now}
        )
        return VoteResult(outcome=VoteOutcome.DENIED, reply=reply, request=denied)

    async def _duplicate(self, request: ApprovalRequest, user: User, audit: _Auditor) -> VoteResult:
        votes = await self.state.votes(request.id)
        person = self.policy.person(user.key)
        earlier = next(vote for vote in votes if self.policy.person(vote.user) == person)
        said = "approved" if earlier.approve else "denied"
        who = mention(user.key) if earlier.user == user.key else f"{mention(earlier.user)} (you)"
        reason = f"{who} already {said} {request.id}; a vote counts once per person"
        await audit(AuditOutcome.DUPLICATE, detail=reason)
        return VoteResult(
            outcome=VoteOutcome.DUPLICATE,
            reply=Reply(title=reason, tone=Tone.WARNING, private=True),
            request=request,
            approvers=await self._approvers(request.id),
        )

    async def _finished(self, request: ApprovalRequest, audit: _Auditor) -> VoteResult:
        reason = f"request {request.id} is already {request.status}; nothing changed"
        await audit(AuditOutcome.REFUSED, detail=reason)
        return VoteResult(outcome=VoteOutcome.FINISHED, reply=_error(reason), request=request)

    async def _expired_on_vote(self, request: ApprovalRequest, audit: _Auditor) -> VoteResult:
        if await self._expire(request, audit.now):
            request = request.model_copy(
                update={"status": RequestStatus.EXPIRED, "finished_at": audit.now}
            )
        reason = f"request {request.id} expired {age(request.expires_at, audit.now)} ago"
        await audit(AuditOutcome.REFUSED, detail=reason)
        return VoteResult(
            outcome=VoteOutcome.EXPIRED,
            reply=_error(reason + f"; nothing ran ({request.text})"),
            request=request,
        )

    async def cancel(
        self, user: User, request_id: str, *, channel: str | None = None
    ) -> CancelResult:
        """Withdraw a pending request: its requester or an admin may (audited)."""
        now = self.clock()
        request = await self.state.get_request(request_id)
        audit = _Auditor(self.audit, user, "cancel", request_id, channel, request, now)
        if request is None:
            await audit(AuditOutcome.REFUSED, detail="unknown request")
            return CancelResult(cancelled=False, reply=_error(f"no approval request {request_id}"))
        if user.key != request.user and ADMIN not in self.policy.roles_of(user):
            reason = f"only {mention(request.user)} (who asked) or an admin can cancel {request.id}"
            await audit(AuditOutcome.REFUSED, detail=reason)
            return CancelResult(cancelled=False, reply=_error(reason), request=request)
        if not await self.state.set_request_status(request.id, RequestStatus.CANCELLED, now=now):
            current = await self.state.get_request(request.id) or request
            reason = f"request {request.id} is already {current.status}; nothing changed"
            await audit(AuditOutcome.REFUSED, detail=reason)
            return CancelResult(cancelled=False, reply=_error(reason), request=current)
        await audit(AuditOutcome.CANCELLED)
        cancelled = request.model_copy(
            update={"status": RequestStatus.CANCELLED, "finished_at": now}
        )
        reply = Reply(
            title=f"request {request.id} cancelled by {mention(user.key)}",
            lines=[f"{request.text} will not run"],
        )
        return CancelResult(cancelled=True, reply=reply, request=cancelled)

    async def withdraw(
        self, user: User, request_id: str, *, channel: str | None = None
    ) -> VoteResult:
        """Take back `user`'s vote while the request is pending (a removed reaction; audited)."""
        now = self.clock()
        request = await self.state.get_request(request_id)
        audit = _Auditor(self.audit, user, "withdraw", request_id, channel, request, now)
        if request is None:
            await audit(AuditOutcome.REFUSED, detail="unknown request")
            reply = _error(f"no approval request {request_id}")
            return VoteResult(outcome=VoteOutcome.UNKNOWN, reply=reply)
        if request.status is not RequestStatus.PENDING:
            return await self._finished(request, audit)
        if not await self.state.remove_vote(request.id, user.key):
            reason = f"{mention(user.key)} has no vote on {request.id} to withdraw"
            await audit(AuditOutcome.REFUSED, detail=reason)
            return VoteResult(outcome=VoteOutcome.REFUSED, reply=_error(reason), request=request)
        approvers = await self._approvers(request.id)
        await audit(AuditOutcome.WITHDRAWN, approvers=approvers)
        reply = Reply(
            title=f"{mention(user.key)} withdrew their vote on {request.id}", private=True
        )
        return VoteResult(
            outcome=VoteOutcome.WITHDRAWN, reply=reply, request=request, approvers=approvers
        )

    async def expire_due(self, now: datetime | None = None) -> list[ApprovalRequest]:
        """Expire every pending request whose time is up (audited); post `expired_reply` each."""
        now = now or self.clock()
        expired = []
        for request in await self.state.due_expiries(now):
            if await self._expire(request, now):
                expired.append(
                    request.model_copy(update={"status": RequestStatus.EXPIRED, "finished_at": now})
                )
        return expired

    async def expire_unrun(self, request: ApprovalRequest) -> ApprovalRequest | None:
        """An approved request the bot never ran (it was stopped) and whose time is now up:
        expire it rather than run it late (audited). None if it is not approved or not due."""
        now = self.clock()
        if request.expires_at > now or not await self._expire(
            request, now, expect=RequestStatus.APPROVED
        ):
            return None
        return request.model_copy(update={"status": RequestStatus.EXPIRED, "finished_at": now})

    async def _expire(
        self,
        request: ApprovalRequest,
        now: datetime,
        expect: RequestStatus = RequestStatus.PENDING,
    ) -> bool:
        changed = await self.state.set_request_status(
            request.id, RequestStatus.EXPIRED, expect=(expect,), now=now
        )
        if not changed:
            return False
        await self.audit(
            AuditEntry(
                at=now,
                platform=request.platform,
                channel=request.channel,
                user=request.user,
                command=request.text,
                action=request.action,
                service=request.service,
                approvers=await self._approvers(request.id),
                outcome=AuditOutcome.EXPIRED,
                request_id=request.id,
            )
        )
        return True

    async def mark_executed(self, request_id: str) -> bool:
        """Approved -> executed, once: call it when the layer starts running the command."""
        return await self.state.set_request_status(
            request_id, RequestStatus.EXECUTED, expect=(RequestStatus.APPROVED,), now=self.clock()
        )

    async def mark_refused(self, request_id: str) -> None:
        """Executed -> refused: running the approved command was refused, so nothing ran."""
        await self.state.set_request_status(
            request_id, RequestStatus.REFUSED, expect=(RequestStatus.EXECUTED,), now=self.clock()
        )

    async def pending(self, platform: str | None = None, channel: str | None = None) -> Reply:
        """`/approvals`: pending requests (of one channel if given) as a table."""
        now = self.clock()
        requests = await self.state.pending_requests(platform, channel)
        if not requests:
            return Reply(title="no pending approval requests")
        rows = []
        for request in requests:
            count = len(await self._approvers(request.id))
            rows.append(
                [
                    request.id,
                    request.text,
                    mention(request.user),
                    f"{count}/{request.approvals_needed} {roles_text(request.approver_roles)}",
                    _left(request.expires_at, now),
                ]
            )
        table = Table(columns=["ID", "COMMAND", "ASKED BY", "APPROVALS", "EXPIRES IN"], rows=rows)
        return Reply(
            title=f"{len(requests)} pending approval request{'s' if len(requests) > 1 else ''}",
            table=table,
            lines=["approve ID or deny ID"],
        )

    async def request_view(self, request: ApprovalRequest) -> Reply:
        """The request message as it should read now: what will run, who asked, the rule,
        who has voted and the expiry; Approve and Deny while it is pending."""
        now = self.clock()
        votes = await self.state.votes(request.id)
        rule = _rule_of(request)
        others = [
            mention(user)
            for user in self.policy.members(rule.approvers)
            if self.policy.person(user) != self.policy.person(request.user)
        ]
        who = rule.describe() + (f" ({', '.join(others)})" if others else "")
        voted = ", ".join(f"{'✓' if v.approve else '✗'} {mention(v.user)}" for v in votes)
        pending = request.status is RequestStatus.PENDING
        if pending:
            expiry = (
                f"in {_left(request.expires_at, now)} ({request.expires_at:%Y-%m-%d %H:%M} UTC)"
            )
            title = f"approval needed for {request.text} (request {request.id})"
        else:
            expiry = f"{request.expires_at:%Y-%m-%d %H:%M} UTC"
            title = f"{request.text} (request {request.id}): {request.status}"
        actions = (
            [
                Action(label="Approve", command=f"approve {request.id}", style=ActionStyle.PRIMARY),
                Action(label="Deny", command=f"deny {request.id}", style=ActionStyle.DANGER),
            ]
            if pending
            else []
        )
        return Reply(
            title=title,
            tone=_STATUS_TONES.get(request.status, Tone.WARNING),
            fields=[
                ReplyField(name="will run", value=f"{request.text} as {mention(request.user)}"),
                ReplyField(name="asked by", value=mention(request.user)),
                ReplyField(name="approvers", value=who),
                ReplyField(name="votes", value=voted or "none yet"),
                ReplyField(name="expires" if pending else "expiry", value=expiry),
            ],
            actions=actions,
        )

    async def _approvers(self, request_id: str) -> tuple[str, ...]:
        """The accounts that approved, one per person (the first each person used)."""
        seen: dict[str, str] = {}
        for vote in await self.state.votes(request_id):
            if vote.approve:
                seen.setdefault(self.policy.person(vote.user), vote.user)
        return tuple(seen.values())


def expired_reply(request: ApprovalRequest, approved: bool = False) -> Reply:
    """What the layer posts in the request's channel when it expires (`approved`: it was,
    but the bot was stopped before running it until after its time was up)."""
    why = (
        "approved, but the bot was stopped until after its time was up"
        if approved
        else "not approved in time"
    )
    return Reply(
        title=f"request {request.id} expired",
        tone=Tone.WARNING,
        lines=[f"{request.text} (asked by {mention(request.user)}) was {why}; nothing ran"],
    )


class _Auditor:
    """Writes the audit entry of one vote or cancel."""

    def __init__(
        self,
        write: Callable[[AuditEntry], Awaitable[object]],
        user: User,
        verb: str,
        request_id: str,
        channel: str | None,
        request: ApprovalRequest | None,
        now: datetime,
    ) -> None:
        self.write, self.user, self.verb, self.now = write, user, verb, now
        self.request_id = request.id if request else request_id
        self.channel = channel or (request.channel if request else "-")
        self.service = request.service if request else None
        self.text = request.text if request else None  # what the vote is about

    async def __call__(
        self, outcome: AuditOutcome, *, approvers: tuple[str, ...] = (), detail: str | None = None
    ) -> None:
        await self.write(
            AuditEntry(
                at=self.now,
                platform=self.user.platform,
                channel=self.channel,
                user=self.user.key,
                command=f"{self.verb} {self.request_id}",
                action=self.verb,
                service=self.service,
                approvers=approvers,
                outcome=outcome,
                detail=detail or self.text,
                request_id=self.request_id,
            )
        )


def _rule_of(request: ApprovalRequest) -> ApprovalRule:
    seconds = max(1, round((request.expires_at - request.created_at).total_seconds()))
    return ApprovalRule(
        approvals=request.approvals_needed,
        approvers=request.approver_roles,
        expires_after=seconds,
    )


def _left(until: datetime, now: datetime) -> str:
    return human_seconds(max(0.0, (until - now).total_seconds()))


def _error(title: str) -> Reply:
    """A vote or cancel that does not count: shown to the voter only."""
    return Reply(title=title, tone=Tone.ERROR, private=True)


def _mentions(users: tuple[str, ...]) -> str:
    return ", ".join(mention(user) for user in users)


_STATUS_TONES = {
    RequestStatus.APPROVED: Tone.SUCCESS,
    RequestStatus.EXECUTED: Tone.SUCCESS,
    RequestStatus.DENIED: Tone.ERROR,
    RequestStatus.EXPIRED: Tone.WARNING,
    RequestStatus.CANCELLED: Tone.INFO,
    RequestStatus.REFUSED: Tone.ERROR,
}
