"""The one flow every command follows: parse, authorize, approval gate, execute.

`CommandLayer.handle` takes an `Invocation` from any adapter and returns an `Outcome`: a
reply now and, for long operations, progress ending in a final result. What the bot says on
its own (an approved command running, an expired request, a rollout picked up again after a
restart) arrives on `notices`. Everything is audited; pending approvals, tracked operations
and delivery ids live in the state file, so a restart loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from commands.access.approvals import Approvals, expired_reply
from commands.access.policy import ApprovalRule, Policy
from commands.clients.backup import BackupClient, BackupError
from commands.clients.kube import Kube, KubeError
from commands.clients.registry import RegistryClient
from commands.core.config import Config
from commands.core.models import (
    FinalResult,
    Invocation,
    Notice,
    Outcome,
    Platform,
    Progress,
    ProgressUpdate,
    Reply,
    RollbackStarted,
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
    command_text,
    help_reply,
    parse_command,
)
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
    RequestStatus,
    State,
    TrackedOperation,
    utcnow,
)
from commands.tracking.backups import follow_backup, follow_restore
from commands.tracking.progress import ProgressFeed
from commands.tracking.tracker import Busy, Tracker

RolloutCommand = DeployCommand | RestartCommand | ScaleCommand | RollbackCommand
log = logging.getLogger(__name__)

ROLLOUT_KINDS = frozenset({"deploy", "restart", "scale", "rollback"})
RESUME_RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)  # picking an operation up again, then 30 s
EXPIRY_RETRY_SECONDS = 5.0
CLOSE_GRACE_SECONDS = 2.0  # how long closing waits for results already in to be written
BOT_USER_ID = "holmbot"  # who asks when the bot itself proposes a rollback


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
        self.approvals = Approvals(self.policy, state)
        self.notices: asyncio.Queue[Notice] = asyncio.Queue()
        self._exits = exits
        self._tasks: set[asyncio.Task[None]] = set()
        self._new_request = asyncio.Event()
        self._expiry: asyncio.Task[None] | None = None
        self.audit_listeners: list[Callable[[AuditEntry], None]] = []  # e.g. metrics

    @classmethod
    async def open(cls, config: Config) -> CommandLayer:
        """Connect to Kubernetes, the registry and the backup service as configured, open the
        state file, pick up operations a previous run was tracking, and start expiring
        requests."""
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
            await layer._recover()
        except BaseException:
            await layer.close()
            raise
        layer._expiry = asyncio.create_task(layer._expire_requests())
        return layer

    async def close(self) -> None:
        """Stop background work and close every client. Operations still being tracked stay
        `running` in the state file, so the next start picks them up."""
        if self._expiry is not None:
            self._expiry.cancel()
            await asyncio.gather(self._expiry, return_exceptions=True)
        await self.clients.tracker.close()  # every rollout ends with "tracking stopped"
        if self._tasks:  # recorders write what had already finished; backups are cut off
            _, unfinished = await asyncio.wait(list(self._tasks), timeout=CLOSE_GRACE_SECONDS)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
        await self._exits.aclose()

    # --- the flow ------------------------------------------------------------------------

    async def handle(self, invocation: Invocation) -> Outcome:
        """Run one invocation; never raises for anything a user typed or a service did."""
        started = time.monotonic()
        if invocation.delivery_id is not None and not await self.state.claim_delivery(
            invocation.platform, invocation.delivery_id
        ):
            await self._audit(invocation, AuditOutcome.DUPLICATE, detail=invocation.delivery_id)
            return Outcome(Reply(title="duplicate delivery ignored"), duplicate=True)
        try:
            command = parse_command(invocation.text)
        except ParseError as error:
            await self._audit(invocation, AuditOutcome.REFUSED, error=str(error))
            return Outcome(error.reply())
        if not self.policy.channel_allowed(invocation.platform, invocation.channel):
            reply = Reply(title="holmbot does not take commands in this channel", tone=Tone.ERROR)
            await self._audit(invocation, AuditOutcome.REFUSED, command, detail=reply.title)
            return Outcome(reply)
        decision = self.policy.decide(invocation.user, command.action, command.service)
        if not decision.allowed:
            await self._audit(invocation, AuditOutcome.REFUSED, command, detail=decision.reason)
            return Outcome(decision.reply())
        if decision.approval is not None:
            return await self._guarded(
                invocation, command, self._ask_approval(invocation, command, decision.approval)
            )
        return await self._guarded(invocation, command, self._run(invocation, command, started))

    async def vote(
        self, user: User, request_id: str, approve: bool, *, channel: str | None = None
    ) -> Outcome:
        """An approve or deny from any adapter (a command, a reaction, a button). When it is
        the last approval needed, the request runs once, as its requester, and its outcome
        goes to the request's channel as a notice."""
        result = await self.approvals.vote(user, request_id, approve, channel=channel)
        if result.execute and result.request is not None:
            await self._run_approved(result.request, result.approvers)
        return Outcome(result.reply)

    async def bind_message(self, operation_id: str, message_ref: str) -> None:
        """Remember where an operation's progress message lives (to finish it after a
        restart)."""
        await self.state.update_operation(operation_id, message_ref=message_ref)

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
                return await show_logs(command, clients.kube)
            case BackupCreateCommand() | BackupListCommand() | BackupRestoreCommand():
                return await run_backup_command(command, clients.backup)
            case HealthCommand():
                return await show_health(command, clients.kube, clients.config)
            case HelpCommand():
                return Outcome(help_reply(command))
            case ApproveCommand() | DenyCommand():
                approve = isinstance(command, ApproveCommand)
                return await self.vote(
                    user, command.request_id, approve, channel=invocation.channel
                )
            case CancelCommand():
                cancelled = await self.approvals.cancel(
                    user, command.request_id, channel=invocation.channel
                )
                return Outcome(cancelled.reply)
            case ApprovalsCommand():
                pending = await self.approvals.pending(invocation.platform, invocation.channel)
                return Outcome(pending)
            case AuditCommand():
                return Outcome(audit_reply(await self.state.audit_entries(limit=command.limit)))
        reply = Reply(title=f"{command.action} is not available", tone=Tone.WARNING)
        return Outcome(reply, refused=True)

    # --- steps ---------------------------------------------------------------------------

    async def _guarded(
        self, invocation: Invocation, command: BaseCommand, work: Awaitable[Outcome]
    ) -> Outcome:
        """Await `work`; a bug becomes an audited failure and a short reply, not a traceback."""
        try:
            return await work
        except Exception as error:
            log.exception("command failed: %s", command.action)
            await self._audit(invocation, AuditOutcome.FAILED, command, error=repr(error))
            title = f"{command.action} failed unexpectedly; see the bot's log"
            return Outcome(Reply(title=title, tone=Tone.ERROR), failed=True)

    async def _run_approved(self, request: ApprovalRequest, approvers: tuple[str, ...]) -> None:
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
        self.notices.put_nowait(Notice(request.platform, request.channel, outcome))

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
        if command.action in ("approve", "deny", "cancel"):
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
            await self._audit(
                invocation, result, command, duration_ms=_ms(started), **problem, **audit
            )
            return outcome
        running = self.clients.tracker.running(command.service or "")
        revision_before = running.revision_before if running else None
        await self.state.start_operation(
            TrackedOperation(
                id=outcome.operation_id,
                kind=command.action,
                service=command.service,
                summary=running.summary if running else command_text(command),
                started_by=invocation.user.key,
                platform=invocation.platform,
                channel=invocation.channel,
                detail={"text": invocation.text, "revision_before": revision_before, **audit},
            )
        )
        feed = self._record(invocation, command, outcome.operation_id, outcome.progress, started)
        return Outcome(outcome.reply, feed.follow(), operation_id=outcome.operation_id)

    def _record(
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
            await self._finish(invocation, command, operation_id, final, started)

        self._spawn(feed.pump(self._remembering(operation_id, progress), operation_id, settle))
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

    async def _finish(
        self,
        invocation: Invocation,
        command: BaseCommand,
        operation_id: str,
        final: FinalResult,
        started: float,
    ) -> None:
        stored = await self.state.get_operation(operation_id)
        detail = stored.detail if stored else {}
        state = OperationState.SUCCEEDED if final.ok else OperationState.FAILED
        if not await self.state.finish_operation(operation_id, state, message=final.message):
            return  # already ended and audited
        if final.rolled_back_to is not None:
            outcome = AuditOutcome.AUTO_ROLLBACK
        else:
            outcome = AuditOutcome.OK if final.ok else AuditOutcome.FAILED
        await self._audit(
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

    async def _ask_approval(
        self, invocation: Invocation, command: BaseCommand, rule: ApprovalRule
    ) -> Outcome:
        """Validate what would run, then open an approval request for it."""
        problem = await self._preflight(command, invocation)
        if problem is not None:
            await self._audit(invocation, AuditOutcome.REFUSED, command, detail=problem.title)
            return Outcome(problem)
        opened = await self.approvals.open_request(invocation, command, rule)
        self._new_request.set()
        return Outcome(opened.reply, request_id=opened.request.id)

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

    async def _propose_rollback(self, cause: Invocation, service: str, final: FinalResult) -> None:
        """A rollback trigger fired and policy wants a person to agree: ask in the channel."""
        command = RollbackCommand(service=service, revision=final.rollback_proposed)
        _, rule = self.policy.rule("rollback", service)
        asker = User(platform=cause.platform, id=BOT_USER_ID)
        invocation = Invocation(user=asker, channel=cause.channel, text=command_text(command))
        opened = await self.approvals.open_request(invocation, command, rule or ApprovalRule())
        self._new_request.set()
        reply = opened.reply.model_copy(
            update={
                "title": f"Roll {service} back to revision {final.rollback_proposed}? "
                f"({final.trigger})",
                "lines": [final.message, *opened.reply.lines],
            }
        )
        outcome = Outcome(reply, request_id=opened.request.id)
        self.notices.put_nowait(Notice(cause.platform, cause.channel, outcome))

    # --- background work -----------------------------------------------------------------

    async def _recover(self) -> None:
        """After a restart: run requests that were approved just before the stop, and pick up
        the operations that were being tracked, finishing their messages."""
        unfinished = await self.state.unfinished_operations()  # before the approved ones start
        for request in await self.state.requests_with_status(RequestStatus.APPROVED):
            if (late := await self.approvals.expire_unrun(request)) is not None:
                reply = expired_reply(late, approved=True)
                outcome = Outcome(reply, request_id=late.id)
                self.notices.put_nowait(Notice(late.platform, late.channel, outcome))
                continue
            votes = await self.state.votes(request.id)
            await self._run_approved(request, tuple(v.user for v in votes if v.approve))
        for stored in unfinished:
            await self._pick_up(stored)

    async def _pick_up(self, stored: TrackedOperation, attempt: int = 0) -> None:
        """Follow one stored operation again and say so where its progress went. While
        Kubernetes does not answer, try again with back-off until the operation's timeout."""
        try:
            outcome = await self._resume(stored)
        except KubeError as error:
            elapsed = (utcnow() - stored.started_at).total_seconds()
            if elapsed < self.clients.config.rollout.timeout_seconds:
                self._spawn(self._pick_up_later(stored, attempt + 1))
                if attempt > 0:
                    return  # the channel was told on the first attempt
                title = f"holmbot restarted; cannot follow {stored.summary} yet ({stored.id})"
                reply = Reply(title=title, tone=Tone.WARNING, lines=[f"{error}; trying again"])
                outcome = Outcome(reply, operation_id=stored.id)
            else:
                outcome = await self._lose(stored, error)
        except Exception:
            log.exception("could not pick up %s again", stored.id)
            await self.state.finish_operation(
                stored.id, OperationState.FAILED, message="lost across a restart"
            )
            outcome = Outcome(
                Reply(
                    title=f"{stored.summary}: lost track of it across a restart",
                    tone=Tone.ERROR,
                )
            )
        self.notices.put_nowait(
            Notice(Platform(stored.platform), stored.channel, outcome, stored.message_ref)
        )

    async def _pick_up_later(self, stored: TrackedOperation, attempt: int) -> None:
        await asyncio.sleep(RESUME_RETRY_SECONDS[min(attempt, len(RESUME_RETRY_SECONDS)) - 1])
        await self._pick_up(stored, attempt)

    async def _lose(self, stored: TrackedOperation, error: Exception) -> Outcome:
        """Give up on a stored operation: recorded and audited as failed."""
        invocation, command = self._stored_invocation(stored)
        final = FinalResult(
            operation_id=stored.id,
            ok=False,
            message=f"{stored.summary}: lost track of it across a restart ({error})",
            duration_seconds=0.0,
            reason="lost",
        )
        await self._finish(invocation, command, stored.id, final, time.monotonic())
        return Outcome(final.reply(), operation_id=stored.id)

    @staticmethod
    def _stored_invocation(stored: TrackedOperation) -> tuple[Invocation, BaseCommand]:
        text = stored.detail.get("text", stored.summary)
        user = User.parse(stored.started_by)
        return Invocation(user=user, channel=stored.channel, text=text), parse_command(text)

    async def _resume(self, stored: TrackedOperation) -> Outcome:
        """Follow one stored operation again; its end is recorded and audited as usual.
        Raises `KubeError` while Kubernetes does not answer."""
        invocation, command = self._stored_invocation(stored)
        try:
            progress = await self._follow_again(stored)
        except Busy as error:
            return await self._lose(stored, error)
        elapsed = (utcnow() - stored.started_at).total_seconds()
        feed = self._record(invocation, command, stored.id, progress, time.monotonic() - elapsed)
        title = f"holmbot restarted; following {stored.summary} again ({stored.id})"
        return Outcome(Reply(title=title), feed.follow(), operation_id=stored.id)

    async def _follow_again(self, stored: TrackedOperation) -> AsyncIterator[Progress]:
        if stored.kind in ROLLOUT_KINDS and stored.service:
            operation = await self.clients.rollouts.resume(
                stored.id,
                stored.service,
                stored.kind,
                stored.summary,
                who=stored.started_by,
                platform=str(stored.platform),
                revision_before=stored.detail.get("revision_before"),
                elapsed=(utcnow() - stored.started_at).total_seconds(),
                rolling_back=RollbackStarted.model_validate(rollback)
                if (rollback := stored.detail.get("rollback"))
                else None,
            )
            return operation.follow()
        if stored.kind == "backup.create":
            return follow_backup(self.clients.backup, stored.id)
        return follow_restore(self.clients.backup, stored.id)

    async def _expire_requests(self) -> None:
        """Expire requests when their time comes and say so where they were asked."""
        while True:
            try:
                await self._expire_once()
            except Exception:  # a bad moment of the state file must not end expiries
                log.exception("expiring approval requests failed; trying again")
                await asyncio.sleep(EXPIRY_RETRY_SECONDS)

    async def _expire_once(self) -> None:
        self._new_request.clear()
        upcoming = await self.state.next_expiry()
        wait = None if upcoming is None else (upcoming - utcnow()).total_seconds()
        if wait is None or wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_request.wait(), wait)
            return
        for request in await self.approvals.expire_due():
            outcome = Outcome(expired_reply(request), request_id=request.id)
            self.notices.put_nowait(Notice(request.platform, request.channel, outcome))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _audit(
        self,
        invocation: Invocation,
        outcome: AuditOutcome,
        command: BaseCommand | None = None,
        **fields: Any,
    ) -> None:
        action = command.action if command else None
        service = command.service if command else None
        entry = AuditEntry.of(invocation, outcome, action=action, service=service, **fields)
        try:
            await self.state.audit(entry)
        except Exception:  # the action itself must not fail because its record could not be
            log.exception("could not write the audit entry for %s", action)
        for listener in self.audit_listeners:
            listener(entry)
        log.info(
            "audit outcome=%s action=%s service=%s user=%s platform=%s channel=%s",
            outcome,
            action,
            service,
            invocation.user.key,
            invocation.platform,
            invocation.channel,
        )
