"""After a restart: run what was approved just before the stop, and pick up tracked operations.

An operation that was being tracked is followed again and its progress message (found through
its message references) is finished by the adapter of its platform. While Kubernetes does not
answer, picking up is retried with back-off until the operation's timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from commands.clients.kube import KubeError
from commands.core.models import (
    FinalResult,
    Invocation,
    NoticeKind,
    Outcome,
    Platform,
    Progress,
    Reply,
    RollbackStarted,
    Tone,
    User,
)
from commands.core.parser import BaseCommand, parse_command
from commands.store.state import OperationState, RequestStatus, TrackedOperation, utcnow
from commands.tracking.backups import follow_backup, follow_restore
from commands.tracking.tracker import Busy

if TYPE_CHECKING:
    from commands.flow.layer import CommandLayer

log = logging.getLogger(__name__)

ROLLOUT_KINDS = frozenset({"deploy", "restart", "scale", "rollback"})
RESUME_RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)  # picking an operation up again, then 30 s


class Recovery:
    """What a start does with the state a previous run left (see the module docstring)."""

    def __init__(self, layer: CommandLayer) -> None:
        self.layer = layer

    async def run(self) -> None:
        layer = self.layer
        state = layer.state
        unfinished = await state.unfinished_operations()  # before the approved ones start
        for request in await state.requests_with_status(RequestStatus.APPROVED):
            if (late := await layer.approvals.expire_unrun(request)) is not None:
                await layer.request_expired(late, approved=True)
                continue
            votes = await state.votes(request.id)
            await layer.run_approved(request, tuple(v.user for v in votes if v.approve))
        for stored in unfinished:
            await self.pick_up(stored)

    async def pick_up(self, stored: TrackedOperation, attempt: int = 0) -> None:
        """Follow one stored operation again and say so where its progress went."""
        try:
            outcome = await self._resume(stored)
        except KubeError as error:
            elapsed = (utcnow() - stored.started_at).total_seconds()
            if elapsed < self.layer.clients.config.rollout.timeout_seconds:
                self.layer.spawn(self._pick_up_later(stored, attempt + 1))
                if attempt > 0:
                    return  # the channel was told on the first attempt
                title = f"holmbot restarted; cannot follow {stored.summary} yet ({stored.id})"
                reply = Reply(title=title, tone=Tone.WARNING, lines=[f"{error}; trying again"])
                outcome = Outcome(reply, operation_id=stored.id)
            else:
                outcome = await self._lose(stored, error)
        except Exception:
            log.exception("could not pick up %s again", stored.id)
            await self.layer.state.finish_operation(
                stored.id, OperationState.FAILED, message="lost across a restart"
            )
            title = f"{stored.summary}: lost track of it across a restart"
            outcome = Outcome(Reply(title=title, tone=Tone.ERROR), operation_id=stored.id)
        await self.layer.notify(
            NoticeKind.OPERATION_RESUMED,
            Platform(stored.platform),
            stored.channel,
            outcome,
            operation_id=stored.id,
            requester=stored.started_by,
        )

    async def _pick_up_later(self, stored: TrackedOperation, attempt: int) -> None:
        await asyncio.sleep(RESUME_RETRY_SECONDS[min(attempt, len(RESUME_RETRY_SECONDS)) - 1])
        await self.pick_up(stored, attempt)

    async def _lose(self, stored: TrackedOperation, error: Exception) -> Outcome:
        """Give up on a stored operation: recorded and audited as failed."""
        invocation, command = stored_invocation(stored)
        final = FinalResult(
            operation_id=stored.id,
            ok=False,
            service=stored.service,
            message=f"{stored.summary}: lost track of it across a restart ({error})",
            duration_seconds=0.0,
            reason="lost",
        )
        await self.layer.finish(invocation, command, stored.id, final, time.monotonic())
        return Outcome(final.reply(), operation_id=stored.id)

    async def _resume(self, stored: TrackedOperation) -> Outcome:
        """Follow one stored operation again; its end is recorded and audited as usual.
        Raises `KubeError` while Kubernetes does not answer."""
        invocation, command = stored_invocation(stored)
        try:
            progress = await self._follow_again(stored)
        except Busy as error:
            return await self._lose(stored, error)
        elapsed = (utcnow() - stored.started_at).total_seconds()
        feed = self.layer.record(
            invocation, command, stored.id, progress, time.monotonic() - elapsed
        )
        title = f"holmbot restarted; following {stored.summary} again ({stored.id})"
        return Outcome(Reply(title=title), feed.follow(), operation_id=stored.id)

    async def _follow_again(self, stored: TrackedOperation) -> AsyncIterator[Progress]:
        clients = self.layer.clients
        if stored.kind in ROLLOUT_KINDS and stored.service:
            rollback = stored.detail.get("rollback")
            operation = await clients.rollouts.resume(
                stored.id,
                stored.service,
                stored.kind,
                stored.summary,
                who=stored.started_by,
                platform=str(stored.platform),
                revision_before=stored.detail.get("revision_before"),
                elapsed=(utcnow() - stored.started_at).total_seconds(),
                rolling_back=RollbackStarted.model_validate(rollback) if rollback else None,
            )
            return operation.follow()
        if stored.kind == "backup.create":
            return follow_backup(clients.backup, stored.id)
        return follow_restore(clients.backup, stored.id)


def stored_invocation(stored: TrackedOperation) -> tuple[Invocation, BaseCommand]:
    """The invocation and command a stored operation was started by."""
    text = stored.detail.get("text", stored.summary)
    user = User.parse(stored.started_by)
    return Invocation(user=user, channel=stored.channel, text=text), parse_command(text)
