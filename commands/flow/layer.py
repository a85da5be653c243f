"""The one flow every command follows: parse, authorize, approval gate, execute.

`CommandLayer.handle` takes an `Invocation` from any adapter (typed text, a button click, a
reaction mapped to `approve ID` by `react`) and returns an `Outcome`: a reply now and, for long
operations, progress ending in a final result. What the bot says on its own arrives as
`Notice`s on `subscribe(platform)`. Everything is audited; pending approvals, tracked
operations, message references and delivery ids live in the state file, so a restart loses
nothing. docs/architecture.md describes the layers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from commands.access.approvals import Approvals, VoteOutcome, VoteResult, expired_reply
from commands.access.policy import ApprovalRule, Policy
from commands.clients.backup import BackupClient, BackupError
from commands.clients.kube import Kube
from commands.clients.registry import RegistryClient
from commands.core.config import Config
from commands.core.models import (
    FinalResult,
    Invocation,
    MessageRef,
    Notice,
    NoticeKind,
    Outcome,
    Platform,
    Progress,
    ProgressUpdate,
    Reply,
    Tone,
    User,
)
from commands.core.parser import (
    ApprovalsCommand,
    ApproveCommand,
    AuditCommand,
    BackupCreateCommand,
    BackupListCommand,
    BackupRestoreCommand,
    BaseCommand,
    CancelCommand,
    DenyCommand,
    DeployCommand,
    HealthCommand,
    HelpCommand,
    HistoryCommand,
    LogsCommand,
    ParseError,
    RestartCommand,
    RollbackCommand,
    ScaleCommand,
    StatusCommand,
    WithdrawCommand,
    command_text,
    help_reply,
    parse_command,
)
from commands.flow.auditing import Auditor
from commands.flow.expiry import ExpiryTimer
from commands.flow.notices import NoticeBus
from commands.flow.recovery import Recovery
from commands.handlers.audit import audit_reply
from commands.handlers.backup import run_backup_command, unknown_backup
from commands.handlers.health import show_health
from commands.handlers.logs import show_logs
from commands.handlers.rollout import Rollouts
from commands.store.state import (
    ApprovalRequest,
    AuditEntry,
    AuditOutcome,
    OperationState,
    State,
    TrackedOperation,
)
from commands.tracking.progress import ProgressFeed
from commands.tracking.tracker import Tracker

RolloutCommand = DeployCommand | RestartCommand | ScaleCommand | RollbackCommand
VoteCommand = ApproveCommand | DenyCommand | WithdrawCommand
log = logging.getLogger(__name__)

# votes and cancellations: answered from the state at once, a refusal privately
ANSWERED_FROM_STATE = (ApproveCommand, DenyCommand, WithdrawCommand, CancelCommand)

CLOSE_GRACE_SECONDS = 2.0  # how long closing waits for results already in to be written
BOT_USER_ID = "holmbot"  # who asks when the bot itself proposes a rollback
_DECIDED = {VoteOutcome.APPROVED, VoteOutcome.DENIED}


@dataclass
class Clients:
    """The outside services the commands talk to, opened once per process."""

    config: Config
    kube: Kube
    registry: RegistryClient
    backup: BackupClient
    tracker: Tracker
    rollouts: Rollouts


def _ms(since: float) -> int:
    return int((time.monotonic() - since) * 1000)


class CommandLayer:
    """Platform-free command handling shared by every chat adapter."""

    def __init__(self, clients: Clients, state: State, exits: AsyncExitStack) -> None:
        self.clients = clients
        self.state = state
        self.policy = Policy.from_config(clients.config)
        self.auditor = Auditor(state)
        self.audit_listeners: list[Callable[[AuditEntry], None]] = self.auditor.listeners
        self.approvals = Approvals(self.policy, state, audit=self.auditor.write)
        self.notices = NoticeBus()
        self._expiry = ExpiryTimer(self.approvals, self.request_expired)
        self._exits = exits
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(cls, config: Config) -> CommandLayer:
        """Connect to Kubernetes, the registry and the backup service as configured, open the
        state file, pick up what a previous run left, and start expiring requests."""
        async with AsyncExitStack() as exits:
            state = await State.in_dir(config.state_dir)
            exits.push_async_callback(state.close)
            kube = await Kube.from_config(config.kubernetes, config.namespace)
            exits.push_async_callback(kube.close)
            registry = RegistryClient(config.registry)
            exits.push_async_callback(registry.aclose)
            backup = BackupClient(config.backup)
            exits.push_async_callback(backup.aclose)
            tracker = Tracker(kube, config.rollout)
            exits.push_async_callback(tracker.close)
            rollouts = Rollouts(
                kube, tracker, registry_host=config.registry.host, tags=registry.tags
            )
            clients = Clients(config, kube, registry, backup, tracker, rollouts)
            layer = cls(clients, state, exits.pop_all())
        try:
            await Recovery(layer).run()
        except BaseException:
            await layer.close()
            raise
        layer._expiry.start()
        return layer

    async def close(self) -> None:
        """Stop background work and close every client. Operations still being tracked stay
        `running` in the state file, so the next start picks them up."""
        await self._expiry.close()
        await self.clients.tracker.close()  # every rollout ends with "tracking stopped"
        if self._tasks:  # recorders write what had already finished; backups are cut off
            _, unfinished = await asyncio.wait(list(self._tasks), timeout=CLOSE_GRACE_SECONDS)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
        await self._exits.aclose()

    # --- what adapters call ----------------------------------------------------------------

    async def handle(self, invocation: Invocation) -> Outcome:
        """Run one invocation; never raises for anything a user typed or a service did."""
        started = time.monotonic()
        audit = self.auditor.invocation
        claimed = await self.claim(invocation)
        if isinstance(claimed, Outcome):
            return claimed
        invocation = claimed
        try:
            command = parse_command(invocation.text)
        except ParseError as error:
            await audit(invocation, AuditOutcome.REFUSED, error=str(error))
            return Outcome(error.reply().model_copy(update={"private": True}), refused=True)
        if not self.policy.channel_allowed(invocation.platform, invocation.channel):
            title = "holmbot does not take commands in this channel"
            await audit(invocation, AuditOutcome.REFUSED, command, detail=title)
            return Outcome(Reply(title=title, tone=Tone.ERROR, private=True), refused=True)
        decision = self.policy.decide(invocation.user, command.action, command.service)
        if not decision.allowed:
            await audit(invocation, AuditOutcome.REFUSED, command, detail=decision.reason)
            return Outcome(decision.reply(), refused=True)
        if decision.approval is not None:
            return await self._guarded(
                invocation, command, self._ask_approval(invocation, command, decision.approval)
            )
        return await self._guarded(invocation, command, self._run(invocation, command, started))

    async def react(
        self,
        user: User,
        message: MessageRef,
        *,
        approve: bool,
        removed: bool = False,
        delivery_id: str | None = None,
    ) -> Outcome | None:
        """A reaction on (or taken off) a message: on a request message it is `approve ID` or
        `deny ID` (`withdraw ID` when removed), run like typed text. None: not a request."""
        bound = await self.state.find_message(message.platform, message.channel, message.message_id)
        if bound is None or bound.subject_kind != "request":
            return None
        verb = "withdraw" if removed else "approve" if approve else "deny"
        invocation = Invocation(
            user=user,
            channel=message.channel,
            thread=message.thread,
            text=f"{verb} {bound.subject_id}",
            delivery_id=delivery_id,
        )
        return await self.handle(invocation)

    async def bind_message(
        self,
        message: MessageRef,
        *,
        request_id: str | None = None,
        operation_id: str | None = None,
    ) -> None:
        """Remember that `message` shows a request or an operation's progress, so reactions and
        buttons on it find it and later notices (votes, expiry, a restart) edit it."""
        if request_id is not None:
            await self.state.bind_message(message, "request", request_id, "request")
        if operation_id is not None:
            await self.state.bind_message(message, "operation", operation_id, "progress")

    async def claim(self, invocation: Invocation) -> Invocation | Outcome:
        """Claim the invocation's delivery id, as `handle` does first: the invocation to
        handle (without the id, now claimed), or for a delivery seen before the duplicate
        outcome, audited. An adapter claims before it acknowledges, so a redelivery gets no
        second acknowledgement."""
        if invocation.delivery_id is None:
            return invocation
        if not await self.state.claim_delivery(invocation.platform, invocation.delivery_id):
            await self.auditor.invocation(
                invocation, AuditOutcome.DUPLICATE, detail=invocation.delivery_id
            )
            return Outcome(Reply(title="duplicate delivery ignored", private=True), duplicate=True)
        return invocation.model_copy(update={"delivery_id": None})

    def will_run(self, invocation: Invocation) -> bool:
        """Whether `handle(invocation)` would do work rather than answer at once, privately:
        the text parses, the policy lets its user run it in this channel, and it is not a vote
        or a cancellation (answered from the state, a refusal privately). Nothing is run or
        audited; an adapter uses it to acknowledge first and answer later."""
        try:
            command = parse_command(invocation.text)
        except ParseError:
            return False
        if isinstance(command, ANSWERED_FROM_STATE):
            return False
        return (
            self.policy.channel_allowed(invocation.platform, invocation.channel)
            and self.policy.decide(invocation.user, command.action, command.service).allowed
        )

    def subscribe(self, platform: Platform) -> AsyncIterator[Notice]:
        """The notices for `platform`'s adapter, also those raised before it subscribed."""
        return self.notices.subscribe(platform)

    async def refuse(self, invocation: Invocation, reason: str) -> Outcome:
        """An adapter refuses an invocation before the flow (e.g. a console user who may not
        speak as a chat user): audited, and said to the asker only."""
        await self.auditor.invocation(invocation, AuditOutcome.REFUSED, detail=reason)
        return Outcome(Reply(title=reason, tone=Tone.ERROR, private=True), refused=True)

    async def execute(self, command: BaseCommand, invocation: Invocation) -> Outcome:
        """Run an authorized command as the invocation's user."""
        clients, user = self.clients, invocation.user
        rollouts = clients.rollouts
        match command:
            case DeployCommand() | RestartCommand() | ScaleCommand() | RollbackCommand():
                return await self._rollout(command, invocation)
            case StatusCommand():
                return await rollouts.status(command.service)
            case HistoryCommand():
                return await rollouts.history(command.service)
            case LogsCommand():
                return await show_logs(command, clients.kube, clients.config.logs.max_total_bytes)
            case BackupCreateCommand() | BackupListCommand() | BackupRestoreCommand():
                return await run_backup_command(command, clients.backup)
            case HealthCommand():
                return await show_health(command, clients.kube, clients.config)
            case HelpCommand():
                return Outcome(help_reply(command))
            case ApproveCommand() | DenyCommand() | WithdrawCommand():
                return await self._vote(command, invocation)
            case CancelCommand():
                cancelled = await self.approvals.cancel(
                    user, command.request_id, channel=invocation.channel
                )
                if cancelled.cancelled and cancelled.request is not None:
                    await self._request_changed(NoticeKind.REQUEST_DECIDED, cancelled.request)
                return Outcome(cancelled.reply, refused=not cancelled.cancelled)
            case ApprovalsCommand():
                pending = await self.approvals.pending(invocation.platform, invocation.channel)
                return Outcome(pending)
            case AuditCommand():
                return Outcome(audit_reply(await self.state.audit_entries(limit=command.limit)))
        reply = Reply(title=f"{command.action} is not available", tone=Tone.WARNING)
        return Outcome(reply, refused=True)

    # --- approvals ---------------------------------------------------------------------------

    async def _vote(self, command: VoteCommand, invocation: Invocation) -> Outcome:
        """A vote, typed or by reaction or button: counted by the engine; the request message
        is edited through a notice, and the last approval needed runs the request once."""
        user, request_id, channel = invocation.user, command.request_id, invocation.channel
        result: VoteResult
        if isinstance(command, WithdrawCommand):
            result = await self.approvals.withdraw(user, request_id, channel=channel)
        else:
            approve = isinstance(command, ApproveCommand)
            result = await self.approvals.vote(user, request_id, approve, channel=channel)
        counted = result.outcome in {VoteOutcome.RECORDED, VoteOutcome.WITHDRAWN, *_DECIDED}
        if result.request is not None and counted:
            kind = (
                NoticeKind.REQUEST_DECIDED
                if result.outcome in _DECIDED
                else NoticeKind.REQUEST_VOTED
            )
            await self._request_changed(kind, result.request)
        if result.execute and result.request is not None:
            await self.run_approved(result.request, result.approvers)
        return Outcome(result.reply, refused=not counted)

    async def _request_changed(self, kind: NoticeKind, request: ApprovalRequest) -> None:
        """Tell the request's platform to redraw the request message."""
        view = await self.approvals.request_view(request)
        await self.notify(
            kind,
            request.platform,
            request.channel,
            Outcome(view, request_id=request.id),
            request_id=request.id,
            requester=request.user,
        )

    async def request_expired(self, request: ApprovalRequest, *, approved: bool = False) -> None:
        """Redraw an expired request's message, saying why nothing ran."""
        view = await self.approvals.request_view(request)
        said = expired_reply(request, approved=approved)
        reply = view.model_copy(update={"title": said.title, "lines": said.lines})
        await self.notify(
            NoticeKind.REQUEST_EXPIRED,
            request.platform,
            request.channel,
            Outcome(reply, request_id=request.id),
            request_id=request.id,
            requester=request.user,
        )

    async def run_approved(self, request: ApprovalRequest, approvers: tuple[str, ...]) -> None:
        """Run an approved request once (approved -> executed is a compare-and-set), as its
        requester, and post the outcome where the request was asked."""
        if not await self.approvals.mark_executed(request.id):
            return
        invocation, command = request.invocation(), request.command
        run = self._run(
            invocation, command, time.monotonic(), approvers=approvers, request_id=request.id
        )
        outcome = await self._guarded(invocation, command, run)
        if outcome.refused:
            await self.approvals.mark_refused(request.id)
        await self.notify(
            NoticeKind.APPROVED_RUNNING,
            request.platform,
            request.channel,
            outcome,
            request_id=request.id,
            operation_id=outcome.operation_id,
            requester=request.user,
        )

    async def _ask_approval(
        self, invocation: Invocation, command: BaseCommand, rule: ApprovalRule
    ) -> Outcome:
        """Validate what would run, then open an approval request for it."""
        problem = await self._preflight(command, invocation)
        if problem is not None:
            await self.auditor.invocation(
                invocation, AuditOutcome.REFUSED, command, detail=problem.title
            )
            return Outcome(problem, refused=True)
        opened = await self.approvals.open_request(invocation, command, rule)
        self._expiry.poke()
        return Outcome(opened.reply, request_id=opened.request.id)

    async def _propose_rollback(self, cause: Invocation, service: str, final: FinalResult) -> None:
        """A rollback trigger fired and policy wants a person to agree: ask in the channel."""
        command = RollbackCommand(service=service, revision=final.rollback_proposed)
        _, rule = self.policy.rule("rollback", service)
        asker = User(platform=cause.platform, id=BOT_USER_ID)
        invocation = Invocation(user=asker, channel=cause.channel, text=command_text(command))
        opened = await self.approvals.open_request(invocation, command, rule or ApprovalRule())
        self._expiry.poke()
        reply = opened.reply.model_copy(
            update={
                "title": f"Roll {service} back to revision {final.rollback_proposed}? "
                f"({final.trigger})",
                "lines": [final.message, *opened.reply.lines],
            }
        )
        await self.notify(
            NoticeKind.ROLLBACK_PROPOSED,
            cause.platform,
            cause.channel,
            Outcome(reply, request_id=opened.request.id),
            thread=cause.thread,
            request_id=opened.request.id,
            operation_id=final.operation_id,
        )

    # --- notices -----------------------------------------------------------------------------

    async def notify(
        self,
        kind: NoticeKind,
        platform: Platform,
        channel: str,
        outcome: Outcome,
        *,
        thread: str | None = None,
        request_id: str | None = None,
        operation_id: str | None = None,
        requester: str | None = None,
    ) -> None:
        """Publish a notice for `platform`, with the messages bound to what it concerns: the
        request's message, or the operation's progress message when an operation resumes."""
        if kind is NoticeKind.OPERATION_RESUMED:
            refs = await self._refs("operation", operation_id)
        else:
            refs = await self._refs("request", request_id)
        notice = Notice(
            kind=kind,
            platform=platform,
            channel=channel,
            outcome=outcome,
            refs=refs,
            thread=thread or next((ref.thread for ref in refs if ref.thread), None),
            request_id=request_id,
            operation_id=operation_id,
            requester=requester,
        )
        self.notices.publish(notice)

    async def _refs(self, kind: str, subject_id: str | None) -> list[MessageRef]:
        if subject_id is None:
            return []
        try:
            return [bound.ref for bound in await self.state.messages_of(kind, subject_id)]
        except Exception:  # a notice without its message is better than none
            log.exception("could not read the messages of %s %s", kind, subject_id)
            return []

    # --- running -----------------------------------------------------------------------------

    async def _guarded(
        self, invocation: Invocation, command: BaseCommand, work: Awaitable[Outcome]
    ) -> Outcome:
        """Await `work`; a bug becomes an audited failure and a short reply, not a traceback."""
        try:
            return await work
        except Exception as error:
            log.exception("command failed: %s", command.action)
            await self.auditor.invocation(
                invocation, AuditOutcome.FAILED, command, error=repr(error)
            )
            title = f"{command.action} failed unexpectedly; see the bot's log"
            return Outcome(Reply(title=title, tone=Tone.ERROR), failed=True)

    async def _run(
        self,
        invocation: Invocation,
        command: BaseCommand,
        started: float,
        *,
        approvers: tuple[str, ...] = (),
        request_id: str | None = None,
    ) -> Outcome:
        """Execute, audit, and for tracked operations record them until their final result."""
        outcome = await self.execute(command, invocation)
        if command.action in ("approve", "deny", "withdraw", "cancel"):
            return outcome  # the approval engine audits votes and cancellations itself
        audit = {"approvers": approvers, "request_id": request_id}
        if outcome.progress is None or outcome.operation_id is None:
            title = outcome.reply.title
            if outcome.refused:  # nothing ran: it may not, or need not
                result, problem = AuditOutcome.REFUSED, {"detail": title}
            elif outcome.failed:  # the title says what failed, the first line why
                why = ": ".join([title, *outcome.reply.lines[:1]])
                result, problem = AuditOutcome.FAILED, {"error": why}
            else:
                result, problem = AuditOutcome.OK, {}
            await self.auditor.invocation(
                invocation, result, command, duration_ms=_ms(started), **problem, **audit
            )
            return outcome
        running = self.clients.tracker.running(command.service or "")
        revision_before = running.revision_before if running else None
        operation = TrackedOperation(
            id=outcome.operation_id,
            kind=command.action,
            service=command.service,
            summary=running.summary if running else command_text(command),
            started_by=invocation.user.key,
            platform=invocation.platform,
            channel=invocation.channel,
            detail={"text": invocation.text, "revision_before": revision_before, **audit},
        )
        await self.state.start_operation(operation, for_request=request_id)
        feed = self.record(invocation, command, outcome.operation_id, outcome.progress, started)
        return Outcome(outcome.reply, feed.follow(), operation_id=outcome.operation_id)

    def record(
        self,
        invocation: Invocation,
        command: BaseCommand,
        operation_id: str,
        progress: AsyncIterator[Progress],
        started: float,
    ) -> ProgressFeed:
        """Follow an operation in the background, whoever else reads its progress, and
        write its end to the state file and the audit log before anyone is shown it."""
        feed = ProgressFeed()

        async def settle(final: FinalResult) -> None:
            if final.reason == "cancelled":
                return  # the bot is stopping: the next start picks the operation up again
            await self.finish(invocation, command, operation_id, final, started)

        self.spawn(feed.pump(self._remembering(operation_id, progress), operation_id, settle))
        return feed

    async def _remembering(
        self, operation_id: str, progress: AsyncIterator[Progress]
    ) -> AsyncIterator[Progress]:
        """Pass progress on, writing down an automatic rollback's start before it is shown, so
        that a restart finishes the rollback instead of following the rollout it undoes."""
        async for item in progress:
            if isinstance(item, ProgressUpdate) and item.rollback is not None:
                rollback = item.rollback.model_dump(mode="json")
                await self.state.update_operation(operation_id, detail={"rollback": rollback})
            yield item

    async def finish(
        self,
        invocation: Invocation,
        command: BaseCommand,
        operation_id: str,
        final: FinalResult,
        started: float,
    ) -> None:
        """Write an operation's end and audit it, once; propose a rollback if one is due."""
        stored = await self.state.get_operation(operation_id)
        detail = stored.detail if stored else {}
        state = OperationState.SUCCEEDED if final.ok else OperationState.FAILED
        if not await self.state.finish_operation(operation_id, state, message=final.message):
            return  # already ended and audited
        if final.rolled_back_to is not None:
            outcome = AuditOutcome.AUTO_ROLLBACK
        else:
            outcome = AuditOutcome.OK if final.ok else AuditOutcome.FAILED
        await self.auditor.invocation(
            invocation,
            outcome,
            command,
            duration_ms=_ms(started),
            error=None if final.ok else final.message,
            detail=final.trigger,
            approvers=tuple(detail.get("approvers") or ()),
            request_id=detail.get("request_id"),
        )
        if final.rollback_proposed is not None and command.service is not None:
            await self._propose_rollback(invocation, command.service, final)

    async def _rollout(
        self, command: RolloutCommand, invocation: Invocation, *, dry_run: bool = False
    ) -> Outcome:
        """A deploy, restart, scale or rollback as the invocation's user (or only decided)."""
        rollouts, who = self.clients.rollouts, invocation.user.key
        platform = str(invocation.platform)
        match command:
            case DeployCommand(tag=None) | RestartCommand():
                return await rollouts.restart(
                    command.service, who=who, platform=platform, dry_run=dry_run
                )
            case DeployCommand(tag=str(tag)):
                return await rollouts.deploy(
                    command.service,
                    tag,
                    container=command.container,
                    who=who,
                    platform=platform,
                    dry_run=dry_run,
                )
            case ScaleCommand():
                return await rollouts.scale(
                    command.service, command.replicas, who=who, platform=platform, dry_run=dry_run
                )
            case RollbackCommand():
                return await rollouts.rollback(
                    command.service,
                    command.revision or 0,
                    who=who,
                    platform=platform,
                    dry_run=dry_run,
                )

    async def _preflight(self, command: BaseCommand, invocation: Invocation) -> Reply | None:
        """Why a command would be refused right away: what running it would refuse now (an
        unknown service, tag, container, revision or backup, a busy service, nothing to do)."""
        match command:
            case DeployCommand() | RestartCommand() | ScaleCommand() | RollbackCommand():
                decided = await self._rollout(command, invocation, dry_run=True)
                return decided.reply if decided.refused or decided.failed else None
            case BackupRestoreCommand():
                client = self.clients.backup
                try:
                    await client.get_backup(command.backup_id)
                except BackupError as error:
                    if error.status == 404:
                        return (await unknown_backup(client, command.backup_id)).reply
                    title = f"cannot restore {command.backup_id}: {error}"
                    return Reply(title=title, tone=Tone.ERROR)
        return None

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in the background; `close` waits a grace for it."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
