"""Live rollout tracking with kubectl's rollout-status meaning, and the runbook's triggers.

Each tracked operation watches its Deployment (listed by `metadata.name`, then watched from
that resourceVersion, re-listed on 410 and when a watch ends; DELETED is an error) and the
Deployment's pods, in threads, and emits a `ProgressUpdate` whenever what a user would see
changes, then one `FinalResult`. While a rollout is tracked the rollback triggers (runbook
3.3) are checked on its new ReplicaSet's pods; when one fires the tracker undoes the rollout
(`auto_rollback: rollback`) and tracks that too, proposes the rollback for approval
(`approve`), or only reports it (`report`).

The tracker also keeps the registry of running operations (in memory for now): one per
service, so a second deploy of a service being tracked is refused with who started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

from commands.clients import kubectl
from commands.clients.kube import Kube, KubeError, WatchEvent
from commands.clients.pods import PodState, pod_state
from commands.core.formatting import human_seconds
from commands.core.models import FinalResult, Phase, Progress, ProgressUpdate, RollbackStarted
from commands.tracking.progress import ProgressFeed
from commands.tracking.triggers import RollbackTriggers, Trigger

if TYPE_CHECKING:
    from commands.core.config import RolloutConfig

log = logging.getLogger(__name__)
Obj = kubectl.Obj
# Undo a rollout to the given revision; returns what was done, for the final message.
RollbackAction = Callable[[int], Awaitable[str]]


@dataclass
class Operation(ProgressFeed):
    """One tracked operation (a deploy, restart, rollback or scale) and what it has emitted."""

    service: str
    kind: str  # deploy, restart, rollback, scale
    summary: str  # e.g. "deploy nova:v2"
    started_by: str  # `PLATFORM:ID`
    platform: str
    id: str = field(default_factory=lambda: f"op-{uuid.uuid4().hex[:8]}")
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started: float = field(default_factory=time.monotonic)
    revision_before: int | None = None  # what a rollback trigger would go back to

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def describe(self) -> str:
        """`deploy nova:v2 started by console:alice via console 12s ago`."""
        ago = human_seconds(self.elapsed())
        return f"{self.summary} started by {self.started_by} via {self.platform} {ago} ago"


class Busy(Exception):
    """The service already has a tracked operation running."""

    def __init__(self, operation: Operation) -> None:
        super().__init__(
            f"{operation.service} is busy: {operation.describe()} is still running "
            f"({operation.id}); try again when it has finished"
        )
        self.operation = operation


@dataclass(frozen=True)
class Target:
    """What to track: a Deployment, its pods, and how to undo the rollout if a trigger fires."""

    deployment: str
    pod_selector: str
    revision_before: int | None = None  # the revision an automatic rollback goes back to
    rollback: RollbackAction | None = None  # None: triggers are reported, never acted on


@dataclass(frozen=True)
class _Ending:
    """How one watched rollout ended."""

    status: str  # done, failed, timeout, trigger, gone (deleted, or the watch failed)
    message: str
    reason: str | None = None
    trigger: Trigger | None = None
    revision: int | None = None
    problems: tuple[str, ...] = ()


class _RolloutView:
    """What the watches have shown so far of one Deployment and its pods."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.deployment: Obj | None = None
        self.gone: _Ending | None = None  # the Deployment was deleted or cannot be watched
        self.pods: dict[str, Obj] = {}
        self.new_replicaset: Obj | None = None
        self.api_problem: str | None = None
        self.note: str | None = None  # said after kubectl's status, e.g. while verifying

    def apply(self, source: str, event: WatchEvent) -> None:
        if event.type == "ERROR":
            self.api_problem = f"Kubernetes API: {event.error}"
            return
        if event.type == "FAILED":
            self.gone = _Ending("gone", f"watching {source} failed: {event.error}", "error")
            return
        self.api_problem = None
        if source == "deployment":
            self._apply_deployment(event)
        else:
            self._apply_pod(event)

    def _apply_deployment(self, event: WatchEvent) -> None:
        obj = event.obj
        if event.type == "SYNC":
            obj = next(iter(event.items or []), None)
        if obj is None or event.type == "DELETED":
            self.gone = _Ending("gone", f'deployment "{self.name}" was deleted', "deleted")
        else:
            self.deployment = obj

    def _apply_pod(self, event: WatchEvent) -> None:
        if event.type == "SYNC":
            self.pods = {pod["metadata"]["name"]: pod for pod in event.items or []}
        elif event.obj is not None:
            name = event.obj["metadata"]["name"]
            if event.type == "DELETED":
                self.pods.pop(name, None)
            else:
                self.pods[name] = event.obj

    def needs_new_replicaset(self) -> bool:
        """Whether the new ReplicaSet is unknown or stale while the controller has caught up."""
        deployment = self.deployment
        if deployment is None:
            return False
        observed = (deployment.get("status") or {}).get("observedGeneration", 0)
        if deployment["metadata"].get("generation", 0) > observed:
            return False
        return self.new_replicaset is None or not kubectl.equal_ignore_hash(
            self.new_replicaset["spec"]["template"], deployment["spec"]["template"]
        )

    def pod_states(self) -> list[PodState]:
        return [pod_state(pod) for pod in self.pods.values()]

    def new_pods(self) -> list[PodState]:
        """The live pods of the new ReplicaSet (none while it is unknown)."""
        if self.new_replicaset is None:
            return []
        uid = self.new_replicaset["metadata"]["uid"]
        return [p for p in self.pod_states() if p.owner_uid == uid and not p.terminating]

    def problems(self) -> list[str]:
        found = sorted(p.problem for p in self.pod_states() if p.problem and not p.terminating)
        return [self.api_problem, *found] if self.api_problem else found

    def progress(self, operation_id: str, *, rolling_back: bool = False) -> ProgressUpdate:
        """The update a user would see now."""
        assert self.deployment is not None
        spec, status = self.deployment.get("spec", {}), self.deployment.get("status") or {}
        updated = status.get("updatedReplicas", 0)
        old_pending = max(status.get("replicas", 0) - updated, 0)
        if rolling_back:
            phase = Phase.ROLLING_BACK
        elif self.note is not None:
            phase = Phase.VERIFYING
        elif self.deployment.get("metadata", {}).get("generation", 0) > status.get(
            "observedGeneration", 0
        ):
            phase = Phase.WAITING
        elif updated >= (spec.get("replicas") or 0) and not old_pending:
            phase = Phase.VERIFYING
        else:
            phase = Phase.PROGRESSING
        return ProgressUpdate(
            operation_id=operation_id,
            service=self.name,
            phase=phase,
            message=kubectl.rollout_status(self.deployment).message
            + (f" ({self.note})" if self.note else ""),
            desired=spec.get("replicas"),
            updated=updated,
            ready=status.get("readyReplicas", 0),
            available=status.get("availableReplicas", 0),
            old_pending=old_pending,
            problems=self.problems(),
        )


def _tagged(queue: asyncio.Queue[tuple[str, WatchEvent]], source: str, event: WatchEvent) -> None:
    queue.put_nowait((source, event))


class Tracker:
    """Tracks rollouts to their end, concurrently, and knows which services are busy."""

    def __init__(self, kube: Kube, policy: RolloutConfig) -> None:
        """`policy.verify_seconds`: how long a completed deploy or restart stays watched for
        the rollback triggers before it is reported done (0: done when kubectl would say so)."""
        self.kube = kube
        self.policy = policy
        self._running: dict[str, Operation] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # --- the registry of running operations -----------------------------------------------

    def running(self, service: str) -> Operation | None:
        return self._running.get(service)

    def operations(self) -> list[Operation]:
        return list(self._running.values())

    def claim(
        self,
        service: str,
        kind: str,
        summary: str,
        started_by: str,
        platform: str,
        operation_id: str | None = None,
    ) -> Operation:
        """Reserve the service for a new operation (or one resumed under its old id);
        `Busy` if one is still running."""
        running = self._running.get(service)
        if running is not None:
            raise Busy(running)
        operation = Operation(service, kind, summary, started_by, platform)
        if operation_id is not None:
            operation.id = operation_id
        self._running[service] = operation
        return operation

    def release(self, operation: Operation) -> None:
        """Free the service (when the change could not be made, or tracking has ended)."""
        if self._running.get(operation.service) is operation:
            del self._running[operation.service]

    # --- tracking -------------------------------------------------------------------------

    def track(
        self, operation: Operation, target: Target, rolling_back: RollbackStarted | None = None
    ) -> AsyncIterator[Progress]:
        """Start tracking in the background; returns the operation's progress stream.

        Tracking runs to its end whether or not anybody reads the stream. `rolling_back`
        resumes an automatic rollback that a restart interrupted.
        """
        work = self._run(operation, target, rolling_back)
        task = asyncio.create_task(work, name=operation.id)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return operation.follow()

    async def close(self) -> None:
        """Stop all tracking (each operation ends with a 'tracking stopped' result)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(
        self, operation: Operation, target: Target, rolling_back: RollbackStarted | None
    ) -> None:
        try:
            if rolling_back is None:
                final = await self._track(operation, target)
            else:
                final = await self._resume_rollback(operation, target, rolling_back)
        except asyncio.CancelledError:
            operation.emit(self._final(operation, False, "tracking stopped", reason="cancelled"))
            raise
        except Exception:  # a bug must still end the operation for its followers
            log.exception("tracking %s failed", operation.id)
            final = self._final(
                operation, False, "tracking failed; see the bot's log", reason="error"
            )
        finally:
            self.release(operation)
        operation.emit(final)

    async def _track(self, operation: Operation, target: Target) -> FinalResult:
        policy = self.policy
        triggers = RollbackTriggers(
            policy.restart_threshold, policy.restart_window_seconds, policy.health_failure_seconds
        )
        verify = policy.verify_seconds if target.rollback is not None else 0.0
        ending = await self._watch(operation, target, triggers, verify)
        if ending.status == "done":
            return self._final(operation, True, ending.message)
        if ending.trigger is None:
            return self._failed(operation, ending)
        return await self._act_on_trigger(operation, target, ending.trigger, ending.revision)

    async def _act_on_trigger(
        self, operation: Operation, target: Target, trigger: Trigger, current: int | None
    ) -> FinalResult:
        """Undo the rollout if allowed (and track that), else report the trigger."""
        fired = f"rollback trigger fired: {trigger}"
        rollback, revision = target.rollback, target.revision_before
        if rollback is None:
            why = f"no automatic rollback for a {operation.kind}"
        elif not revision:
            why = "no earlier revision to roll back to"
        elif self.policy.auto_rollback == "approve":
            message = f"{fired}; rolling back to revision {revision} needs an approval"
            return self._final(
                operation,
                False,
                message,
                reason=trigger.reason,
                trigger=trigger.rule,
                rollback_proposed=revision,
            )
        elif self.policy.auto_rollback != "rollback":
            why = "auto_rollback is set to report"
        else:
            started = RollbackStarted(
                revision=revision,
                from_revision=current or 0,
                rule=trigger.rule,
                detail=trigger.detail,
                reason=trigger.reason,
            )
            return await self._roll_back(operation, target, started, rollback)
        message = f"{fired}; not rolled back ({why})"
        return self._final(operation, False, message, reason=trigger.reason, trigger=trigger.rule)

    async def _resume_rollback(
        self, operation: Operation, target: Target, started: RollbackStarted
    ) -> FinalResult:
        """Finish an automatic rollback a restart interrupted: write the undo if the
        Deployment is still on the revision it was leaving, then track the rollback."""
        try:
            deployment = await self.kube.get_deployment(target.deployment)
        except KubeError as exc:
            message = f"could not finish the rollback after a restart: {exc}"
            return self._triggered(operation, started, message)
        written = kubectl.revision(deployment) != started.from_revision
        if written or target.rollback is None:
            done = f"rolled back to revision {started.revision} before the restart"
            return await self._roll_back(operation, target, started, done=done)
        return await self._roll_back(operation, target, started, target.rollback)

    async def _roll_back(
        self,
        operation: Operation,
        target: Target,
        started: RollbackStarted,
        rollback: RollbackAction | None = None,
        *,
        done: str = "",
    ) -> FinalResult:
        """Undo with `rollback` (or, without one, say `done`) and track the rollback."""
        revision = started.revision
        operation.emit(
            ProgressUpdate(
                operation_id=operation.id,
                message=f"{_fired(started)}; rolling back to revision {revision}",
                service=operation.service,
                phase=Phase.ROLLING_BACK,
                rollback=started,
            )
        )
        if rollback is not None:
            try:
                done = await rollback(revision)
            except (KubeError, kubectl.KubectlError) as exc:
                message = f"automatic rollback to revision {revision} failed: {exc}"
                return self._triggered(operation, started, message)
        ending = await self._watch(operation, target, None, rolling_back=True)
        if ending.status == "done":
            now = f" (now revision {ending.revision})" if ending.revision else ""
            outcome = f"{done}{now}; {ending.message}"
        else:
            outcome = f"{done}, but the rollback did not finish: {ending.message}"
        return self._triggered(operation, started, outcome, rolled_back_to=revision)

    def _triggered(
        self,
        operation: Operation,
        started: RollbackStarted,
        outcome: str,
        rolled_back_to: int | None = None,
    ) -> FinalResult:
        """The failed result of a rollout whose rollback trigger fired, and what came of it."""
        return self._final(
            operation,
            False,
            f"{_fired(started)}; {outcome}",
            reason=started.reason,
            trigger=started.rule,
            rolled_back_to=rolled_back_to,
        )

    async def _watch(
        self,
        operation: Operation,
        target: Target,
        triggers: RollbackTriggers | None,
        verify_seconds: float = 0.0,
        *,
        rolling_back: bool = False,
    ) -> _Ending:
        """Watch one rollout until it completes, fails, times out or a trigger fires.

        With `verify_seconds`, a completed rollout is watched that much longer for the triggers
        (restarts and failing health often show only after the rollout) before it counts.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.policy.timeout_seconds
        events: asyncio.Queue[tuple[str, WatchEvent]] = asyncio.Queue()
        view = _RolloutView(target.deployment)
        shown: ProgressUpdate | None = None
        completed: _Ending | None = None  # the rollout's success, while it is being verified
        async with (
            self.kube.watch(
                "deployments",
                partial(_tagged, events, "deployment"),
                field_selector=f"metadata.name={target.deployment}",
            ),
            self.kube.watch(
                "pods", partial(_tagged, events, "pods"), label_selector=target.pod_selector
            ),
        ):
            while True:
                wake = deadline
                if triggers is not None and (health := triggers.next_deadline()) is not None:
                    wake = min(wake, health + 0.01)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(wake):
                        view.apply(*await events.get())
                while not events.empty():  # coalesce a burst into one update
                    view.apply(*events.get_nowait())
                if view.gone is not None:
                    return view.gone
                now = loop.time()
                if view.deployment is not None:
                    if view.needs_new_replicaset():
                        await self._find_new_replicaset(view)
                    ending = self._ending(view, triggers, now, verifying=completed is not None)
                    if ending is not None and ending.status == "done" and verify_seconds > 0:
                        completed, deadline = ending, now + verify_seconds
                        view.note = f"checking the new pods for {human_seconds(verify_seconds)}"
                        ending = None
                    update = view.progress(operation.id, rolling_back=rolling_back)
                    if update != shown:
                        operation.emit(update)
                        shown = update
                    if ending is not None:
                        return ending
                if now >= deadline and completed is not None:
                    quiet = f"; no rollback trigger in {human_seconds(verify_seconds)}"
                    return replace(completed, message=completed.message + quiet)
                if now >= deadline:
                    return self._timed_out(view)

    async def _find_new_replicaset(self, view: _RolloutView) -> None:
        assert view.deployment is not None
        try:
            replicasets = await self.kube.owned_replicasets(view.deployment)
        except KubeError as exc:  # the next event tries again
            view.api_problem = f"Kubernetes API: {exc}"
            return
        view.new_replicaset = kubectl.new_replicaset(view.deployment, replicasets)

    def _ending(
        self,
        view: _RolloutView,
        triggers: RollbackTriggers | None,
        now: float,
        verifying: bool = False,
    ) -> _Ending | None:
        """How the rollout ends, if it does now: kubectl's verdict, or a trigger firing."""
        assert view.deployment is not None
        status = kubectl.rollout_status(view.deployment)
        if status.done and not verifying:
            return _Ending("done", status.message, revision=kubectl.revision(view.deployment))
        if status.failed and not verifying:
            problems = tuple(view.problems())
            return _Ending(
                "failed", status.message, reason="ProgressDeadlineExceeded", problems=problems
            )
        if triggers is not None:
            fired = triggers.observe(view.new_pods(), now)
            if fired is not None:
                revision = kubectl.revision(view.deployment)
                return _Ending(
                    "trigger", str(fired), reason=fired.reason, trigger=fired, revision=revision
                )
        return None

    def _timed_out(self, view: _RolloutView) -> _Ending:
        timeout = human_seconds(self.policy.timeout_seconds)
        last = kubectl.rollout_status(view.deployment).message if view.deployment else ""
        return _Ending(
            "timeout",
            f"timed out after {timeout}" + (f": {last}" if last else ""),
            reason="timeout",
            problems=tuple(view.problems()),
        )

    def _failed(self, operation: Operation, ending: _Ending) -> FinalResult:
        problems = f" ({'; '.join(ending.problems)})" if ending.problems else ""
        return self._final(operation, False, ending.message + problems, reason=ending.reason)

    @staticmethod
    def _final(
        operation: Operation,
        ok: bool,
        message: str,
        *,
        reason: str | None = None,
        trigger: str | None = None,
        rolled_back_to: int | None = None,
        rollback_proposed: int | None = None,
    ) -> FinalResult:
        elapsed = operation.elapsed()
        verdict = "done" if ok else "failed"
        return FinalResult(
            operation_id=operation.id,
            ok=ok,
            service=operation.service,
            message=f"{operation.summary} {verdict}: {message} ({elapsed:.1f}s)",
            duration_seconds=elapsed,
            reason=reason,
            trigger=trigger,
            rolled_back_to=rolled_back_to,
            rollback_proposed=rollback_proposed,
        )


def _fired(started: RollbackStarted) -> str:
    return f"rollback trigger fired: {started.rule} ({started.detail})"
