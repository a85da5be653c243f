"""kubectl's rules for Deployments, as pure functions on API objects (JSON dicts).

Which ReplicaSets a Deployment owns and which is new, `rollout status` text, the `rollout undo`
target and patch, `rollout history` rows, with kubectl's wording, so operators can compare.
The facts relied on: a rollout is complete when `observedGeneration >= generation` and the
updated, total and available replica counts all equal `spec.replicas`; it has failed when the
Progressing condition says `ProgressDeadlineExceeded`. A revision is the
`deployment.kubernetes.io/revision` annotation of the ReplicaSet that holds it; undo copies that
ReplicaSet's pod template (less its `pod-template-hash` label) into the Deployment, and does
nothing when the template is already the current one. A restart sets the pod template's
`kubectl.kubernetes.io/restartedAt` annotation. See docs/architecture.md for the layers.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
CHANGE_CAUSE = "kubernetes.io/change-cause"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
POD_TEMPLATE_HASH = "pod-template-hash"
DEFAULT_REVISION_HISTORY_LIMIT = 10

# Deployment annotations `rollout undo` keeps from the Deployment rather than the ReplicaSet.
UNDO_SKIPPED_ANNOTATIONS = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        REVISION_HISTORY,
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)


class KubectlError(Exception):
    """An error kubectl itself would print for the same request (its wording)."""


# --- ownership ------------------------------------------------------------------------------


def label_selector(selector: Obj) -> str:
    """A LabelSelector (`matchLabels`, `matchExpressions`) as the `labelSelector` query string."""
    parts = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = ",".join(sorted(expression.get("values") or []))
        if operator == "In":
            parts.append(f"{key} in ({values})")
        elif operator == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif operator == "Exists":
            parts.append(key)
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def controller_uid(obj: Obj) -> str | None:
    """The uid of the object's controlling owner (`controller: true`), if any."""
    for owner in obj.get("metadata", {}).get("ownerReferences") or []:
        if owner.get("controller"):
            return owner.get("uid")
    return None


def owned(objects: list[Obj], owner: Obj) -> list[Obj]:
    """The objects whose controller ownerReference is `owner`."""
    uid = owner["metadata"]["uid"]
    return [obj for obj in objects if controller_uid(obj) == uid]


def revision(obj: Obj) -> int | None:
    """The revision annotation as a number: 0 when absent, None when unreadable (skipped)."""
    value = (obj.get("metadata", {}).get("annotations") or {}).get(REVISION)
    if value is None:
        return 0
    try:
        return int(value)
    except ValueError:
        return None


def template_without_hash(template: Obj) -> Obj:
    """A copy of a pod template without the `pod-template-hash` label."""
    template = copy.deepcopy(template)
    metadata = template.setdefault("metadata", {})
    labels = metadata.get("labels") or {}
    labels.pop(POD_TEMPLATE_HASH, None)
    if labels:
        metadata["labels"] = labels
    else:
        metadata.pop("labels", None)
    return template


def _semantic(value: Any) -> Any:
    """`value` without nulls, empty maps and empty lists (Kubernetes' semantic equality)."""
    if isinstance(value, dict):
        pruned = {key: _semantic(item) for key, item in value.items()}
        return {key: item for key, item in pruned.items() if item not in (None, {}, [])}
    if isinstance(value, list):
        return [_semantic(item) for item in value]
    return value


def equal_ignore_hash(a: Obj, b: Obj) -> bool:
    """Whether two pod templates are semantically equal once `pod-template-hash` is removed."""
    return _semantic(template_without_hash(a)) == _semantic(template_without_hash(b))


def new_replicaset(deployment: Obj, replicasets: list[Obj]) -> Obj | None:
    """The Deployment's new ReplicaSet: the oldest whose template equals the Deployment's."""
    template = deployment["spec"]["template"]
    matching = [rs for rs in replicasets if equal_ignore_hash(rs["spec"]["template"], template)]
    matching.sort(
        key=lambda rs: (rs["metadata"].get("creationTimestamp") or "", rs["metadata"]["name"])
    )
    return matching[0] if matching else None


def images(template: Obj) -> list[str]:
    """The images of a pod template's containers, in order."""
    return [container.get("image", "") for container in template["spec"].get("containers", [])]


# --- rollout status -------------------------------------------------------------------------


@dataclass(frozen=True)
class RolloutStatus:
    """What `kubectl rollout status` says about a Deployment right now."""

    message: str
    done: bool = False
    failed: bool = False  # ProgressDeadlineExceeded: kubectl exits with an error


def rollout_status(deployment: Obj) -> RolloutStatus:
    """kubectl's rollout status for one Deployment, with its exact messages."""
    name = deployment["metadata"]["name"]
    spec, status = deployment.get("spec", {}), deployment.get("status") or {}
    generation = deployment["metadata"].get("generation", 0)
    if generation > status.get("observedGeneration", 0):
        return RolloutStatus("Waiting for deployment spec update to be observed...")
    progressing = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), None
    )
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        return RolloutStatus(f'deployment "{name}" exceeded its progress deadline', failed=True)
    waiting = f'Waiting for deployment "{name}" rollout to finish: '
    updated = status.get("updatedReplicas", 0)
    replicas = spec.get("replicas")
    if replicas is not None and updated < replicas:
        return RolloutStatus(
            f"{waiting}{updated} out of {replicas} new replicas have been updated..."
        )
    old = status.get("replicas", 0) - updated
    if old > 0:
        return RolloutStatus(f"{waiting}{old} old replicas are pending termination...")
    available = status.get("availableReplicas", 0)
    if available < updated:
        return RolloutStatus(f"{waiting}{available} of {updated} updated replicas are available...")
    return RolloutStatus(f'deployment "{name}" successfully rolled out', done=True)


# --- rollout undo ---------------------------------------------------------------------------


def undo_target(deployment: Obj, replicasets: list[Obj], to_revision: int) -> Obj:
    """The owned ReplicaSet `rollout undo --to-revision` goes back to (0: the previous one)."""
    if to_revision < 0:
        raise KubectlError(f"unable to find specified revision {to_revision} in history")
    numbered = [(number, rs) for rs in replicasets if (number := revision(rs)) is not None]
    if to_revision > 0:
        for number, rs in numbered:
            if number == to_revision:
                return rs
        raise KubectlError(f"unable to find specified revision {to_revision} in history")
    numbered.sort(key=lambda pair: pair[0], reverse=True)
    if len(numbered) < 2:
        name = deployment["metadata"]["name"]
        raise KubectlError(f'no rollout history found for deployment "{name}"')
    return numbered[1][1]


def undo_patch(deployment: Obj, replicaset: Obj) -> list[Obj]:
    """kubectl's JSON patch restoring a ReplicaSet's template and annotations onto a Deployment."""
    own = deployment["metadata"].get("annotations") or {}
    annotations = {key: value for key, value in own.items() if key in UNDO_SKIPPED_ANNOTATIONS}
    for key, value in (replicaset["metadata"].get("annotations") or {}).items():
        if key not in UNDO_SKIPPED_ANNOTATIONS:
            annotations[key] = value
    return [
        {
            "op": "replace",
            "path": "/spec/template",
            "value": template_without_hash(replicaset["spec"]["template"]),
        },
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]


# --- rollout history ------------------------------------------------------------------------


@dataclass(frozen=True)
class Revision:
    """One row of `rollout history`, with the images and age kubectl leaves out."""

    number: int
    change_cause: str | None
    images: tuple[str, ...]
    replicaset: str
    created: datetime | None

    @property
    def change_cause_text(self) -> str:
        return self.change_cause or "<none>"


def history(replicasets: list[Obj]) -> list[Revision]:
    """The revisions kept in a Deployment's owned ReplicaSets, oldest first."""
    rows: dict[int, Revision] = {}
    for rs in replicasets:
        number = revision(rs)
        if number is None:
            continue
        annotations = rs["metadata"].get("annotations") or {}
        rows[number] = Revision(
            number=number,
            change_cause=annotations.get(CHANGE_CAUSE) or None,
            images=tuple(images(rs["spec"]["template"])),
            replicaset=rs["metadata"]["name"],
            created=parse_time(rs["metadata"].get("creationTimestamp")),
        )
    return [rows[number] for number in sorted(rows)]


# --- time -----------------------------------------------------------------------------------


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 timestamp from the API, or None."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def rfc3339_now() -> str:
    """Now, as kubectl writes `restartedAt` (RFC 3339, UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
