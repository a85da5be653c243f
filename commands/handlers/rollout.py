"""The rollout commands: deploy, restart, scale, status, rollback (undo) and history.

Each handler takes explicit arguments and returns an `Outcome`; the ones that change a
Deployment claim the service in the tracker first (a second change while one is tracked is
refused), make one conditional write (re-read and re-decided on a 409, a few times), and
return the tracker's progress stream. Semantics follow kubectl (see `commands.clients.kubectl`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from commands.clients import kubectl
from commands.clients.kube import Conflict, Kube, KubeError, KubeTimeout, NotFound
from commands.clients.pods import pod_state
from commands.clients.registry import RegistryError
from commands.core.formatting import age
from commands.core.models import Outcome, Reply, ReplyField, RollbackStarted, Table, Tone
from commands.core.parser import close_matches
from commands.tracking.tracker import Busy, Operation, Target, Tracker

Obj = kubectl.Obj
# "The tags of a repository", newest first (`RegistryClient.tags`); raises RegistryError.
TagLister = Callable[[str], Awaitable[Sequence[str]]]
CONFLICT_RETRIES = 5
NEWEST_TAGS_SHOWN = 5


class _Refused(Exception):
    """Stop here and answer with this reply. `refused`: nothing was changed because it may
    not or need not be (False when the outcome is unknown, e.g. a write that timed out)."""

    def __init__(self, reply: Reply, refused: bool = True) -> None:
        super().__init__(reply.title)
        self.reply = reply
        self.refused = refused


def _refusal(title: str, *lines: str, tone: Tone = Tone.ERROR, refused: bool = True) -> _Refused:
    return _Refused(Reply(title=title, tone=tone, lines=list(lines)), refused)


@dataclass(frozen=True)
class _Change:
    """One decided change to a Deployment, and what to tell the user once it is made."""

    reply: Reply
    patch: Obj | list[Obj] | None = None  # conditional on the resourceVersion read
    replicas: int | None = None  # or a scale through the scale subresource
    undoable: bool = False  # whether a rollback trigger may undo it automatically
    done: str = ""  # what was done, in a few words


# Decide a change from the Deployment as just read: a `_Change`, or raise `_Refused`.
_Plan = Callable[[Obj], Awaitable[_Change]]


class Rollouts:
    """The rollout command handlers for one namespace."""

    def __init__(
        self,
        kube: Kube,
        tracker: Tracker,
        *,
        registry_host: str,
        tags: TagLister,
        conflict_retries: int = CONFLICT_RETRIES,
    ) -> None:
        self.kube = kube
        self.tracker = tracker
        self.registry_host = registry_host
        self.tags = tags
        self.conflict_retries = conflict_retries

    # --- the commands ---------------------------------------------------------------------

    # With `dry_run`, each change is only decided, as kubectl's --dry-run=client does: the
    # reply says what would be done, or why it would be refused; nothing is claimed or written.

    async def deploy(
        self,
        service: str,
        tag: str,
        *,
        container: str | None = None,
        who: str,
        platform: str,
        dry_run: bool = False,
    ) -> Outcome:
        """Set the service's image to `REGISTRY/SERVICE:TAG` (the tag must exist), then track."""
        summary = f"deploy {service}:{tag}"
        plan = partial(self._plan_deploy, service, tag, container, who, platform)
        check = partial(self._require_tag, service, tag)
        work = self._change(service, "deploy", summary, who, platform, plan, check, dry_run)
        return await self._answer(summary, work)

    async def restart(
        self, service: str, *, who: str, platform: str, dry_run: bool = False
    ) -> Outcome:
        """`kubectl rollout restart`: a new `restartedAt` on the pod template, then track."""
        summary = f"restart {service}"
        plan = partial(self._plan_restart, service, who, platform)
        work = self._change(service, "restart", summary, who, platform, plan, dry_run=dry_run)
        return await self._answer(summary, work)

    async def scale(
        self, service: str, replicas: int, *, who: str, platform: str, dry_run: bool = False
    ) -> Outcome:
        """`kubectl scale --replicas=N`, then track until the replicas are available."""
        summary = f"scale {service} to {replicas}"
        plan = partial(self._plan_scale, service, replicas)
        work = self._change(service, "scale", summary, who, platform, plan, dry_run=dry_run)
        return await self._answer(summary, work)

    async def rollback(
        self, service: str, revision: int = 0, *, who: str, platform: str, dry_run: bool = False
    ) -> Outcome:
        """`kubectl rollout undo [--to-revision=N]` (0: the previous revision), then track."""
        summary = f"rollback {service}" + (f" to revision {revision}" if revision else "")
        plan = partial(self._plan_undo, service, revision)
        work = self._change(service, "rollback", summary, who, platform, plan, dry_run=dry_run)
        return await self._answer(summary, work)

    async def status(self, service: str) -> Outcome:
        """`kubectl rollout status` once, with replicas, pod problems and any running operation."""
        return await self._answer(f"status of {service}", self._status(service))

    async def history(self, service: str, revision: int | None = None) -> Outcome:
        """`kubectl rollout history`: revisions with image, change-cause, age; or one revision."""
        return await self._answer(f"history of {service}", self._history(service, revision))

    # --- the shared path of every change --------------------------------------------------

    async def _answer(self, what: str, work: Awaitable[Outcome]) -> Outcome:
        """Run a handler; refusals, busy services and Kubernetes errors become replies."""
        try:
            return await work
        except _Refused as refused:
            return Outcome(refused.reply, refused=refused.refused)
        except Busy as busy:
            return Outcome(Reply(title=str(busy), tone=Tone.WARNING), refused=True)
        except KubeError as exc:
            return Outcome(Reply(title=f"{what} failed: {exc}", tone=Tone.ERROR), failed=True)

    async def _change(
        self,
        service: str,
        kind: str,
        summary: str,
        who: str,
        platform: str,
        plan: _Plan,
        check: Callable[[], Awaitable[None]] | None = None,
        dry_run: bool = False,
    ) -> Outcome:
        """Claim the service, read it, `check` once, then decide and write; track the result."""
        if dry_run:
            if (running := self.tracker.running(service)) is not None:
                raise Busy(running)
            deployment = await self._deployment(service)
            if check is not None:
                await check()
            return Outcome((await plan(deployment)).reply)
        operation = self.tracker.claim(service, kind, summary, who, platform)
        try:
            deployment = await self._deployment(service)
            if check is not None:
                await check()
            change, deployment = await self._write(service, deployment, plan)
        except BaseException:
            self.tracker.release(operation)
            raise
        revision_before = kubectl.revision(deployment) if change.undoable else None
        target = self._target(service, deployment, revision_before)
        reply = change.reply.model_copy(
            update={
                "fields": [*change.reply.fields, ReplyField(name="operation", value=operation.id)]
            }
        )
        operation.revision_before = revision_before
        return Outcome(reply, self.tracker.track(operation, target), operation_id=operation.id)

    def _target(self, service: str, deployment: Obj, revision_before: int | None) -> Target:
        """What to track; with a revision to go back to, triggers may roll back to it."""
        return Target(
            deployment=service,
            pod_selector=kubectl.label_selector(deployment["spec"]["selector"]),
            revision_before=revision_before,
            rollback=partial(self._auto_undo, service) if revision_before else None,
        )

    async def resume(
        self,
        operation_id: str,
        service: str,
        kind: str,
        summary: str,
        *,
        who: str,
        platform: str,
        revision_before: int | None,
        elapsed: float = 0.0,
        rolling_back: RollbackStarted | None = None,
    ) -> Operation:
        """Track an operation again after a restart, under its old id, from the Deployment as
        it is now (restarts its pods already had are a baseline), or finish the automatic
        rollback it was in. Raises `KubeError` or `Busy`."""
        operation = self.tracker.claim(service, kind, summary, who, platform, operation_id)
        operation.started -= elapsed  # its timeout and duration count from the first start
        try:
            deployment = await self.kube.get_deployment(service)
        except BaseException:
            self.tracker.release(operation)
            raise
        target = self._target(service, deployment, revision_before)
        self.tracker.track(operation, target, rolling_back)
        return operation

    async def _write(self, service: str, deployment: Obj, plan: _Plan) -> tuple[_Change, Obj]:
        """Decide and write; on a 409 read again and decide again, a bounded number of times.

        Returns the change made and the Deployment as read for it.
        """
        for _ in range(self.conflict_retries):
            change = await plan(deployment)
            try:
                if change.replicas is not None:
                    await self.kube.scale_deployment(service, change.replicas)
                elif change.patch is not None:
                    version = deployment["metadata"].get("resourceVersion")
                    await self.kube.patch_deployment(
                        service, change.patch, resource_version=version
                    )
                return change, deployment
            except Conflict:
                deployment = await self._deployment(service)
            except KubeTimeout as exc:
                raise _refusal(
                    f"{exc}; the change may or may not have been made",
                    f"check with /status {service} before trying again",
                    refused=False,
                ) from None
        raise _refusal(
            f"{service} kept changing while holmbot updated it ({self.conflict_retries} conflicts "
            "in a row); nothing was changed, try again"
        )

    async def _deployment(self, service: str) -> Obj:
        """The service's Deployment; an unknown name is refused with close names suggested."""
        try:
            return await self.kube.get_deployment(service)
        except NotFound:
            pass
        try:
            names = await self.kube.deployment_names()
        except KubeError:
            names = []
        close = close_matches(service, names)
        hint = f"did you mean {' or '.join(close)}?" if close else ""
        raise _refusal(
            f'no service "{service}" in namespace {self.kube.namespace}', *([hint] if hint else [])
        )

    async def _auto_undo(self, service: str, revision: int) -> str:
        """What a rollback trigger does: undo to `revision`; returns what was done."""
        deployment = await self.kube.get_deployment(service)
        plan = partial(self._plan_undo, service, revision)
        try:
            change, _ = await self._write(service, deployment, plan)
        except _Refused as refused:
            if refused.reply.tone is Tone.ERROR:
                raise kubectl.KubectlError(refused.reply.title) from None
            return refused.reply.title
        return change.done

    # --- deciding each change -------------------------------------------------------------

    async def _plan_deploy(
        self,
        service: str,
        tag: str,
        container: str | None,
        who: str,
        platform: str,
        deployment: Obj,
    ) -> _Change:
        if deployment["spec"].get("paused"):
            raise _refusal(
                f"can't deploy to paused deployment {service} (run rollout resume first)"
            )
        name = _container(service, deployment, container)
        image = f"{self.registry_host}/{service}:{tag}"
        current = _images(deployment).get(name)
        if current == image:
            raise _refusal(f"{service} already runs {image}; nothing to do", tone=Tone.INFO)
        cause = f"holmbot deploy {service}:{tag} by {who} via {platform}"
        patch = {
            "metadata": {"annotations": {kubectl.CHANGE_CAUSE: cause}},
            "spec": {"template": {"spec": {"containers": [{"name": name, "image": image}]}}},
        }
        reply = Reply(
            title=f"Deploying {service}:{tag}",
            fields=[
                ReplyField(name="container", value=name),
                ReplyField(name="image", value=f"{current} → {image}"),
                ReplyField(name="change-cause", value=cause),
            ],
        )
        return _Change(reply, patch=patch, undoable=True)

    async def _require_tag(self, service: str, tag: str) -> None:
        try:
            tags = list(await self.tags(service))
        except RegistryError as exc:
            raise _refusal(
                f"cannot check {service}:{tag} in the registry: {exc}", "nothing was changed"
            ) from None
        if tag in tags:
            return
        newest = ", ".join(tags[:NEWEST_TAGS_SHOWN])
        raise _refusal(
            f"{service}:{tag} is not in the registry; nothing was changed",
            f"newest tags: {newest}" if newest else f"the registry has no tags for {service}",
        )

    async def _plan_restart(
        self, service: str, who: str, platform: str, deployment: Obj
    ) -> _Change:
        if deployment["spec"].get("paused"):
            raise _refusal(
                f'deployments.apps "{service}" can\'t restart paused deployment '
                "(run rollout resume first)"
            )
        cause = f"holmbot restart {service} by {who} via {platform}"
        now = kubectl.rfc3339_now()
        patch = {
            "metadata": {"annotations": {kubectl.CHANGE_CAUSE: cause}},
            "spec": {"template": {"metadata": {"annotations": {kubectl.RESTARTED_AT: now}}}},
        }
        reply = Reply(
            title=f"Restarting {service}",
            fields=[
                ReplyField(name="restartedAt", value=now),
                ReplyField(name="change-cause", value=cause),
            ],
        )
        return _Change(reply, patch=patch, undoable=True)

    async def _plan_scale(self, service: str, replicas: int, deployment: Obj) -> _Change:
        current = deployment["spec"].get("replicas", 1)
        if current == replicas:
            raise _refusal(
                f"{service} already has {replicas} replicas; nothing to do", tone=Tone.INFO
            )
        reply = Reply(title=f"Scaling {service} from {current} to {replicas} replicas")
        return _Change(reply, replicas=replicas)

    async def _plan_undo(self, service: str, revision: int, deployment: Obj) -> _Change:
        if revision < 0:
            raise _refusal(f"unable to find specified revision {revision} in history")
        if deployment["spec"].get("paused"):
            raise _refusal(
                "you cannot rollback a paused deployment; resume it first with "
                "'kubectl rollout resume' and try again"
            )
        replicasets = await self.kube.owned_replicasets(deployment)
        try:
            target = kubectl.undo_target(deployment, replicasets, revision)
        except kubectl.KubectlError as exc:
            kept = ", ".join(str(r.number) for r in kubectl.history(replicasets))
            raise _refusal(str(exc), f"revisions kept: {kept}" if kept else "") from None
        number = kubectl.revision(target)
        if kubectl.equal_ignore_hash(target["spec"]["template"], deployment["spec"]["template"]):
            raise _refusal(
                f"deployment.apps/{service} skipped rollback "
                f"(current template already matches revision {number})",
                "nothing was changed",
                tone=Tone.INFO,
            )
        images = ", ".join(kubectl.images(target["spec"]["template"]))
        cause = (target["metadata"].get("annotations") or {}).get(kubectl.CHANGE_CAUSE)
        reply = Reply(
            title=f"deployment.apps/{service} rolled back to revision {number}",
            fields=[
                ReplyField(name="image", value=images),
                ReplyField(name="change-cause", value=cause or "<none>"),
            ],
        )
        done = f"rolled back to revision {number} ({images})"
        return _Change(reply, patch=kubectl.undo_patch(deployment, target), done=done)

    # --- read-only commands ---------------------------------------------------------------

    async def _status(self, service: str) -> Outcome:
        deployment = await self._deployment(service)
        status = kubectl.rollout_status(deployment)
        observed = deployment.get("status") or {}
        desired = deployment["spec"].get("replicas", 1)
        pods = [pod_state(pod) for pod in await self.kube.owned_pods(deployment)]
        problems = sorted(p.problem for p in pods if p.problem and not p.terminating)
        tone = (
            Tone.SUCCESS if status.done else Tone.ERROR if status.failed or problems else Tone.INFO
        )
        fields = [
            ReplyField(name="revision", value=str(kubectl.revision(deployment))),
            ReplyField(name="image", value=", ".join(_images(deployment).values())),
            ReplyField(
                name="replicas",
                value=f"{desired} desired, {observed.get('updatedReplicas', 0)} updated, "
                f"{observed.get('readyReplicas', 0)} ready, "
                f"{observed.get('availableReplicas', 0)} available",
            ),
        ]
        running = self.tracker.running(service)
        if running is not None:
            fields.append(ReplyField(name="running", value=f"{running.describe()} ({running.id})"))
        return Outcome(Reply(title=status.message, tone=tone, lines=problems, fields=fields))

    async def _history(self, service: str, revision: int | None) -> Outcome:
        deployment = await self._deployment(service)
        rows = kubectl.history(await self.kube.owned_replicasets(deployment))
        if not rows:
            return Outcome(Reply(title="No rollout history found."))
        current = kubectl.revision(deployment)
        if revision is not None:
            return Outcome(_revision_reply(service, rows, revision, current))
        limit = deployment["spec"].get(
            "revisionHistoryLimit", kubectl.DEFAULT_REVISION_HISTORY_LIMIT
        )
        table = Table(
            columns=["REVISION", "IMAGE", "CHANGE-CAUSE", "AGE"],
            rows=[
                [
                    f"{row.number}{' (current)' if row.number == current else ''}",
                    ", ".join(row.images),
                    row.change_cause_text,
                    age(row.created),
                ]
                for row in rows
            ],
        )
        depth = f"{limit} (revisionHistoryLimit), {len(rows) - 1} earlier revision"
        depth += "" if len(rows) - 1 == 1 else "s"
        return Outcome(
            Reply(
                title=f"deployment.apps/{service} rollout history",
                table=table,
                fields=[ReplyField(name="maximum rollback depth", value=f"{depth} kept")],
            )
        )


def _revision_reply(
    service: str, rows: list[kubectl.Revision], number: int, current: int | None
) -> Reply:
    """One revision in detail, or kubectl's error for an unknown one."""
    row = next((r for r in rows if r.number == number), None)
    if row is None:
        raise _refusal("unable to find the specified revision")
    return Reply(
        title=f"deployment.apps/{service} with revision #{number}"
        + (" (current)" if number == current else ""),
        fields=[
            ReplyField(name="image", value=", ".join(row.images)),
            ReplyField(name="change-cause", value=row.change_cause_text),
            ReplyField(name="replicaset", value=row.replicaset),
            ReplyField(name="age", value=age(row.created)),
        ],
    )


def _images(deployment: Obj) -> dict[str, str]:
    """Container name to image, from the Deployment's pod template."""
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"].get("containers", [])
    return {c["name"]: c.get("image", "") for c in containers}


def _container(service: str, deployment: Obj, requested: str | None) -> str:
    """The container a deploy changes: the one asked for, the one named like the service, or the
    only one; otherwise ask for `--container`."""
    names = list(_images(deployment))
    if requested is not None:
        if requested not in names:
            raise _refusal(
                f"{service} has no container {requested}", f"containers: {', '.join(names)}"
            )
        return requested
    if service in names:
        return service
    if len(names) == 1:
        return names[0]
    raise _refusal(
        f"{service} has several containers ({', '.join(names)}); say which with --container NAME"
    )
