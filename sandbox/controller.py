"""The sandbox's kube-controller-manager: the Deployment and ReplicaSet controllers.

They follow kubernetes `pkg/controller/deployment` and `pkg/controller/replicaset`: a
Deployment owns one ReplicaSet per pod template (`NAME-HASH`, labelled `pod-template-hash`),
numbered by `deployment.kubernetes.io/revision`; rolling updates move within maxSurge and
maxUnavailable as pods become available, Recreate scales old pods away first, replica
changes scale proportionally, paused Deployments only scale, and the status carries the
`Available` and `Progressing` conditions kubectl reads, with progressDeadlineSeconds counted
in world time. ReplicaSets keep their pod count, preferring to delete pods that are not
ready and newest; a deleted pod stays `Terminating` until the kubelet has stopped it.

Each controller is a work queue fed by store notifications (coalesced per object, one sync at
a time on the event loop) with a periodic resync; a sync that fails (409 after a concurrent
write, say) is retried from a fresh read. `DeploymentController` runs both with the
scheduler: `start()` on the loop, `await stop()`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import math
import random
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.clock import WorldClock
from sandbox.events import record_event
from sandbox.resources import DEPLOYMENTS, PODS, REPLICASETS, ResourceType
from sandbox.scheduler import Scheduler, peek
from sandbox.selectors import Predicate, label_selector, selector_to_string
from sandbox.store import ApiError, Change, ObjectStore, now_rfc3339

Obj = dict[str, Any]
Key = tuple[str, str]

log = logging.getLogger(__name__)

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE = "kubernetes.io/change-cause"
SKIP_COPY_ANNOTATIONS = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        REVISION_HISTORY,
        DESIRED_REPLICAS,
        MAX_REPLICAS,
        "deprecated.deployment.rollback.to",
    }
)
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
MAX_REVISION_HISTORY_CHARS = 2000
DEFAULT_REVISION_HISTORY_LIMIT = 10
DEFAULT_PROGRESS_DEADLINE = 600
DEFAULT_GRACE_SECONDS = 30
BURST_REPLICAS = 500
TEMPLATE_CACHE_SIZE = 4096
MIN_RESYNC_REAL_SECONDS = 1.0  # the resync is a safety net; deadlines have their own timers

AVAILABLE, PROGRESSING = "Available", "Progressing"
MIN_AVAILABLE, MIN_UNAVAILABLE = "MinimumReplicasAvailable", "MinimumReplicasUnavailable"
NEW_RS_CREATED, FOUND_NEW_RS = "NewReplicaSetCreated", "FoundNewReplicaSet"
RS_UPDATED, NEW_RS_AVAILABLE = "ReplicaSetUpdated", "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED, RESUMED = "DeploymentPaused", "DeploymentResumed"
DEPLOYMENT_COMPONENT, REPLICASET_COMPONENT = "deployment-controller", "replicaset-controller"

_POD_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}
_DEFAULT_TOLERATIONS = (
    {
        "key": "node.kubernetes.io/not-ready",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    },
    {
        "key": "node.kubernetes.io/unreachable",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    },
)


# -- object helpers -------------------------------------------------------------------------


def parse_time(stamp: str) -> float:
    """Seconds since the epoch of an RFC 3339 timestamp."""
    return datetime.fromisoformat(stamp).timestamp()


def _rfc3339_in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(obj: Obj) -> Key:
    return obj["metadata"].get("namespace") or "", obj["metadata"]["name"]


def _all_keys(store: ObjectStore, resource: ResourceType) -> list[Key]:
    keys: list[Key] = []
    peek(store, resource, lambda obj: keys.append(_key(obj)))
    return keys


def _uid(obj: Obj) -> str:
    return obj["metadata"]["uid"]


def spec_replicas(obj: Obj) -> int:
    """`spec.replicas`, defaulting to 1 as the API server does."""
    value = obj["spec"].get("replicas")
    return 1 if value is None else int(value)


def status_count(obj: Obj | None, field: str) -> int:
    """An integer status field; absent (omitted because zero) counts as 0."""
    return int(((obj or {}).get("status") or {}).get(field) or 0)


def _without_zeros(status: Obj, keep: Iterable[str] = ()) -> Obj:
    """Drop zero counts, which the API omits from JSON (omitempty)."""
    kept = set(keep)
    return {k: v for k, v in status.items() if k in kept or not (isinstance(v, int) and v == 0)}


def controller_ref(owner: Obj) -> Obj:
    """The ownerReference a controller puts on what it creates."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controller_of(obj: Obj) -> Obj | None:
    """The ownerReference marked `controller: true`, if any."""
    refs = obj["metadata"].get("ownerReferences") or []
    return next((ref for ref in refs if ref.get("controller")), None)


def _owned_by(obj: Obj, owner: Obj) -> bool:
    ref = controller_of(obj)
    return ref is not None and ref.get("uid") == _uid(owner)


def selector_predicate(selector: Obj | None) -> Predicate:
    """The label predicate of a LabelSelector object."""
    selector = selector or {}
    return label_selector(
        selector_to_string(selector.get("matchLabels"), selector.get("matchExpressions"))
    )


def owned(store: ObjectStore, resource: ResourceType, owner: Obj, selector: Obj) -> list[Obj]:
    """What `owner` controls among the objects its selector matches, as stored: read only."""
    matches = selector_predicate(selector)
    found: list[Obj] = []

    def note(obj: Obj) -> None:
        if matches(obj) and _owned_by(obj, owner):
            found.append(obj)

    peek(store, resource, note, owner["metadata"]["namespace"])
    return found


def _editable(obj: Obj) -> Obj:
    """A copy of a workload whose metadata and top-level spec fields may be changed."""
    return {**obj, "metadata": copy.deepcopy(obj["metadata"]), "spec": dict(obj["spec"])}


def _by_creation(objs: Iterable[Obj]) -> list[Obj]:
    """Oldest first, ties by name (controller.ReplicaSetsByCreationTimestamp)."""
    return sorted(
        objs, key=lambda o: (parse_time(o["metadata"]["creationTimestamp"]), o["metadata"]["name"])
    )


# -- pod templates and hashes ---------------------------------------------------------------


def _semantic(value: Any) -> Any:
    """A value with empty maps, lists and nulls removed: Kubernetes' semantic equality."""
    if isinstance(value, dict):
        pruned = {k: _semantic(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_semantic(v) for v in value]
    return value


def _without_hash(template: Obj) -> Obj:
    """The template's semantic form (a fresh copy) without `pod-template-hash`."""
    result = _semantic(template)
    metadata = result.get("metadata") or {}
    labels = metadata.get("labels") or {}
    labels.pop(HASH_LABEL, None)
    if not labels:
        metadata.pop("labels", None)
    if not metadata:
        result.pop("metadata", None)
    return result


def equal_ignore_hash(first: Obj, second: Obj) -> bool:
    """Whether two pod templates are equal once `pod-template-hash` is dropped from both."""
    return _without_hash(first) == _without_hash(second)


def _fnv32a(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def pod_template_hash(template: Obj, collision_count: int | None = None) -> str:
    """The `pod-template-hash` of a Deployment's pod template.

    fnv-32a over the template's canonical JSON (and the collision count, if any), its decimal
    value written in the safe alphabet as Kubernetes' SafeEncodeString does.
    """
    text = json.dumps(_without_hash(template), sort_keys=True, separators=(",", ":"))
    if collision_count is not None:
        text += str(collision_count)
    digits = str(_fnv32a(text.encode()))
    return "".join(SAFE_ALPHABET[ord(char) % len(SAFE_ALPHABET)] for char in digits)


# -- deployment arithmetic (pkg/controller/deployment/util) --------------------------------


def revision(rs: Obj) -> int:
    """A ReplicaSet's revision; a missing or unreadable annotation counts as 0."""
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def max_revision(replica_sets: Iterable[Obj]) -> int:
    return max((revision(rs) for rs in replica_sets), default=0)


def scaled_value(value: int | str, total: int, round_up: bool) -> int:
    """An IntOrString (`3` or `"25%"`) against `total`; percentages round up or down."""
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("%"):
        product = int(value[:-1]) * total
        return -(-product // 100) if round_up else product // 100
    raise ValueError(f"invalid value for IntOrString: {value!r}: must be an integer or percentage")


def is_rolling(deployment: Obj) -> bool:
    strategy = deployment["spec"].get("strategy") or {}
    return strategy.get("type", "RollingUpdate") == "RollingUpdate"


def resolve_fenceposts(deployment: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) in pods; both zero makes unavailable 1."""
    rolling = (deployment["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    desired = spec_replicas(deployment)
    surge = scaled_value(rolling.get("maxSurge", "25%"), desired, True)
    unavailable = scaled_value(rolling.get("maxUnavailable", "25%"), desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(deployment: Obj) -> int:
    return resolve_fenceposts(deployment)[0] if is_rolling(deployment) else 0


def max_unavailable(deployment: Obj) -> int:
    desired = spec_replicas(deployment)
    if not is_rolling(deployment) or desired == 0:
        return 0
    return min(resolve_fenceposts(deployment)[1], desired)


def progress_deadline(deployment: Obj) -> int | None:
    """progressDeadlineSeconds, or None when the Deployment has none (MaxInt32)."""
    value = deployment["spec"].get("progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE)
    return None if value is None or value == 2**31 - 1 else int(value)


def new_rs_new_replicas(deployment: Obj, all_rss: list[Obj], new_rs: Obj) -> int:
    """How far the new ReplicaSet may be scaled up now."""
    desired = spec_replicas(deployment)
    if not is_rolling(deployment):
        return desired
    current = sum(spec_replicas(rs) for rs in all_rss)
    max_total = desired + resolve_fenceposts(deployment)[0]
    if current >= max_total:
        return spec_replicas(new_rs)
    return spec_replicas(new_rs) + min(max_total - current, desired - spec_replicas(new_rs))


def _rs_template(rs: Obj) -> Obj:
    return _without_hash(rs["spec"]["template"])


def find_new_replica_set(
    deployment: Obj, replica_sets: list[Obj], template_of: Callable[[Obj], Obj] = _rs_template
) -> Obj | None:
    """The oldest ReplicaSet whose template is the Deployment's (ignoring the hash)."""
    template = _without_hash(deployment["spec"]["template"])
    return next((rs for rs in _by_creation(replica_sets) if template_of(rs) == template), None)


def _annotation_int(rs: Obj, name: str) -> int | None:
    try:
        return int((rs["metadata"].get("annotations") or {})[name])
    except (KeyError, ValueError):
        return None


def set_replicas_annotations(rs: Obj, desired: int, maximum: int) -> bool:
    """Record the Deployment's size on a ReplicaSet; whether anything changed."""
    annotations = rs["metadata"].setdefault("annotations", {})
    wanted = {DESIRED_REPLICAS: str(desired), MAX_REPLICAS: str(maximum)}
    if all(annotations.get(k) == v for k, v in wanted.items()):
        return False
    annotations.update(wanted)
    return True


def _append_revision_history(annotations: dict[str, str], old_revision: str) -> None:
    history = annotations.get(REVISION_HISTORY, "")
    if not history:
        annotations[REVISION_HISTORY] = old_revision
        return
    entries = history.split(",")
    total = len(history) + len(old_revision) + 1
    while total > MAX_REVISION_HISTORY_CHARS and entries:
        total -= len(entries.pop(0)) + 1
    annotations[REVISION_HISTORY] = ",".join([*entries, old_revision])


def set_new_rs_annotations(deployment: Obj, rs: Obj, new_revision: int, exists: bool) -> bool:
    """Copy the Deployment's annotations and the next revision onto its new ReplicaSet.

    A ReplicaSet that had a lower revision (an undo) keeps its old number in
    `deployment.kubernetes.io/revision-history`. Returns whether anything changed.
    """
    annotations = rs["metadata"].setdefault("annotations", {})
    changed = False
    for name, value in (deployment["metadata"].get("annotations") or {}).items():
        if name not in SKIP_COPY_ANNOTATIONS and annotations.get(name) != value:
            annotations[name] = value
            changed = True
    old_revision = annotations.get(REVISION)
    if old_revision is not None and not old_revision.isdigit():
        return changed
    if int(old_revision or 0) < new_revision:
        annotations[REVISION] = str(new_revision)
        changed = True
        if old_revision is not None:
            _append_revision_history(annotations, old_revision)
    if not exists:
        desired = spec_replicas(deployment)
        changed |= set_replicas_annotations(rs, desired, desired + max_surge(deployment))
    return changed


# -- conditions -----------------------------------------------------------------------------


def new_condition(kind: str, status: str, reason: str, message: str) -> Obj:
    now = now_rfc3339()
    return {
        "type": kind,
        "status": status,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }


def get_condition(status: Obj | None, kind: str) -> Obj | None:
    conditions = (status or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), None)


def remove_condition(status: Obj, kind: str) -> None:
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != kind]


def set_condition(status: Obj, condition: Obj) -> None:
    """Add or replace a condition; the same status and reason leave the old one in place."""
    current = get_condition(status, condition["type"])
    if current is not None and current["status"] == condition["status"]:
        if current.get("reason") == condition["reason"]:
            return
        condition["lastTransitionTime"] = current["lastTransitionTime"]
    remove_condition(status, condition["type"])
    status["conditions"].append(condition)


def deployment_complete(deployment: Obj, status: Obj) -> bool:
    """Every replica updated and available, and the spec observed."""
    desired = spec_replicas(deployment)
    return (
        status.get("updatedReplicas", 0) == desired
        and status.get("replicas", 0) == desired
        and status.get("availableReplicas", 0) == desired
        and status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0)
    )


def deployment_progressing(deployment: Obj, status: Obj) -> bool:
    """Whether the new status shows progress over the Deployment's current one."""
    old = deployment.get("status") or {}
    old_olds = old.get("replicas", 0) - old.get("updatedReplicas", 0)
    new_olds = status.get("replicas", 0) - status.get("updatedReplicas", 0)
    return (
        status.get("updatedReplicas", 0) > old.get("updatedReplicas", 0)
        or new_olds < old_olds
        or status.get("readyReplicas", 0) > old.get("readyReplicas", 0)
        or status.get("availableReplicas", 0) > old.get("availableReplicas", 0)
    )


# -- pods -----------------------------------------------------------------------------------


def _ready_condition(pod: Obj) -> Obj | None:
    return get_condition(pod.get("status"), "Ready")


def is_pod_ready(pod: Obj) -> bool:
    condition = _ready_condition(pod)
    return condition is not None and condition.get("status") == "True"


def is_active_pod(pod: Obj) -> bool:
    """Not finished and not being deleted: the pods a ReplicaSet counts."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def qos_class(pod_spec: Obj) -> str:
    """The pod's QoS class from its containers' requests and limits."""
    resources = [c.get("resources") or {} for c in pod_spec.get("containers") or []]
    compute = {"cpu", "memory"}
    if not any(
        compute & set(r.get("requests") or {}) or compute & set(r.get("limits") or {})
        for r in resources
    ):
        return "BestEffort"

    def guaranteed(r: Obj) -> bool:
        limits, requests = r.get("limits") or {}, r.get("requests") or {}
        return all(k in limits and requests.get(k, limits[k]) == limits[k] for k in compute)

    return "Guaranteed" if all(guaranteed(r) for r in resources) else "Burstable"


def _pod_spec(template_spec: Obj) -> Obj:
    """A pod's spec from its template, with what admission adds to every pod."""
    spec = copy.deepcopy(template_spec)
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    tolerations = spec.setdefault("tolerations", [])
    present = {t.get("key") for t in tolerations}
    tolerations.extend(copy.deepcopy(t) for t in _DEFAULT_TOLERATIONS if t["key"] not in present)
    return spec


def _deletion_rank(pod: Obj, colocated: int) -> tuple[Any, ...]:
    """Sort key, most deletable first (controller.ActivePodsWithRanks)."""
    status, meta = pod.get("status") or {}, pod["metadata"]
    ready = is_pod_ready(pod)
    since = (_ready_condition(pod) or {}).get("lastTransitionTime") if ready else None
    ready_since = parse_time(since) if since else 0.0
    try:
        cost = int(
            (meta.get("annotations") or {}).get("controller.kubernetes.io/pod-deletion-cost", 0)
        )
    except ValueError:
        cost = 0
    restarts = max(
        (c.get("restartCount", 0) for c in status.get("containerStatuses") or []), default=0
    )
    return (
        1 if (pod.get("spec") or {}).get("nodeName") else 0,
        _POD_PHASE_RANK.get(status.get("phase", "Pending"), 0),
        1 if ready else 0,
        cost,
        -colocated,
        -ready_since,
        -restarts,
        -parse_time(meta["creationTimestamp"]),
    )


def pods_to_delete(pods: list[Obj], count: int) -> list[Obj]:
    """The `count` pods a ReplicaSet removes first: unscheduled, pending, not ready, newest."""
    per_node = Counter((p.get("spec") or {}).get("nodeName") for p in pods)
    ranked = sorted(
        pods, key=lambda p: _deletion_rank(p, per_node[(p.get("spec") or {}).get("nodeName")])
    )
    return ranked[:count]


# -- the work queue -------------------------------------------------------------------------


class Reconciler(ABC):
    """A controller's work queue: object keys from store notifications, coalesced, synced one
    at a time on the event loop, retried with backoff when a sync fails, resynced periodically.
    """

    name = "controller"

    def __init__(self, store: ObjectStore, clock: WorldClock, resync_seconds: float) -> None:
        self.store, self.clock = store, clock
        self._resync_seconds = resync_seconds
        self._dirty: dict[Key, None] = {}
        self._wake = asyncio.Event()
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._handles: set[asyncio.TimerHandle] = set()
        self._failures: dict[Key, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._listening = False
        self._running = False

    @abstractmethod
    def keys_for(self, change: Change) -> Iterable[Key]:
        """The keys a store change makes dirty."""

    @abstractmethod
    def all_keys(self) -> Iterable[Key]:
        """Every key, for the first sync and the periodic resync."""

    @abstractmethod
    def sync(self, key: Key) -> None:
        """Bring one object's world in line with its spec (synchronous store calls only)."""

    def start(self) -> None:
        """Start working (call on the event loop); every object is synced once at once."""
        if not self._listening:
            self.store.add_listener(self._on_change)
            self._listening = True
        self._running = True
        for key in self.all_keys():
            self.enqueue(key)
        self._tasks = [
            asyncio.create_task(self._work(), name=f"{self.name}-worker"),
            asyncio.create_task(self._resync(), name=f"{self.name}-resync"),
        ]

    async def stop(self) -> None:
        """Stop working: cancel the tasks and every pending timer."""
        self._running = False
        for handle in [*self._timers.values(), *self._handles]:
            handle.cancel()
        self._timers.clear()
        self._handles.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self._dirty.clear()

    def enqueue(self, key: Key) -> None:
        """Mark `key` for a sync; repeated marks before it runs make one sync."""
        if self._running:
            self._dirty[key] = None
            self._wake.set()

    def enqueue_after(self, key: Key, world_seconds: float) -> None:
        """Sync `key` again after some world time (the earliest request wins)."""
        if not self._running:
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + self.clock.real(max(world_seconds, 0.0))
        current = self._timers.get(key)
        if current is not None:
            if current.when() <= when:
                return
            current.cancel()
        self._timers[key] = loop.call_at(when, self._timer_fired, key)

    def call_later(self, real_seconds: float, callback: Callable[[], None]) -> None:
        """Run `callback` after a real delay, unless stopped first."""

        def fire() -> None:
            self._handles.discard(handle)
            callback()

        handle = asyncio.get_running_loop().call_later(real_seconds, fire)
        self._handles.add(handle)

    def world_seconds_since(self, stamp: str) -> float:
        """World seconds elapsed since a wall-clock timestamp."""
        return (time.time() - parse_time(stamp)) * self.clock.speed

    def _timer_fired(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.enqueue(key)

    def _on_change(self, change: Change) -> None:
        if self._running:
            for key in self.keys_for(change):
                self.enqueue(key)

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._dirty:
                key = next(iter(self._dirty))
                del self._dirty[key]
                self._process(key)
                await asyncio.sleep(0)

    def _process(self, key: Key) -> None:
        try:
            self.sync(key)
        except ApiError as error:
            if error.code not in (404, 409):
                log.warning("%s: syncing %s/%s: %s", self.name, *key, error.message)
            self._retry(key)
        except Exception:
            log.exception("%s: syncing %s/%s failed", self.name, *key)
            self._retry(key)
        else:
            self._failures.pop(key, None)

    def _retry(self, key: Key) -> None:
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        self.call_later(min(0.005 * 2 ** (failures - 1), 10.0), lambda: self.enqueue(key))

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(max(self.clock.real(self._resync_seconds), MIN_RESYNC_REAL_SECONDS))
            for key in self.all_keys():
                self.enqueue(key)


# -- the ReplicaSet controller --------------------------------------------------------------


class ReplicaSetReconciler(Reconciler):
    """Keeps `spec.replicas` pods for every ReplicaSet and reports their readiness."""

    name = "replicaset-controller"

    def __init__(self, store: ObjectStore, clock: WorldClock, resync_seconds: float) -> None:
        super().__init__(store, clock, resync_seconds)
        self._reaping: set[str] = set()

    def keys_for(self, change: Change) -> Iterable[Key]:
        if change.resource is REPLICASETS:
            return [_key(change.new)]
        if change.resource is not PODS:
            return []
        keys = []
        for pod in (change.old, change.new):
            ref = controller_of(pod) if pod else None
            if ref is not None and ref.get("kind") == "ReplicaSet":
                keys.append((pod["metadata"]["namespace"], ref["name"]))
        return keys

    def all_keys(self) -> Iterable[Key]:
        return _all_keys(self.store, REPLICASETS)

    async def stop(self) -> None:
        await super().stop()
        self._reaping.clear()

    def sync(self, key: Key) -> None:
        rs = self.store.find(REPLICASETS, *key)
        if rs is None:
            return
        pods = self._owned_pods(rs)
        for pod in pods:
            if pod["metadata"].get("deletionTimestamp"):
                self._schedule_removal(pod)
        active = [pod for pod in pods if is_active_pod(pod)]
        if not rs["metadata"].get("deletionTimestamp") and self._manage(rs, active):
            active = [pod for pod in self._owned_pods(rs) if is_active_pod(pod)]
        self._update_status(rs, active)

    def _owned_pods(self, rs: Obj) -> list[Obj]:
        return owned(self.store, PODS, rs, rs["spec"].get("selector") or {})

    def _manage(self, rs: Obj, active: list[Obj]) -> bool:
        diff = len(active) - spec_replicas(rs)
        if diff < 0:
            for _ in range(min(-diff, BURST_REPLICAS)):
                self._create_pod(rs)
        elif diff > 0:
            for pod in pods_to_delete(active, min(diff, BURST_REPLICAS)):
                self._terminate(rs, pod)
        return diff != 0

    def _create_pod(self, rs: Obj) -> None:
        template, meta = rs["spec"]["template"], rs["metadata"]
        template_meta = template.get("metadata") or {}
        spec = _pod_spec(template.get("spec") or {})
        pod: Obj = {
            "metadata": {
                "generateName": f"{meta['name']}-",
                "namespace": meta["namespace"],
                "labels": dict(template_meta.get("labels") or {}),
                "ownerReferences": [controller_ref(rs)],
            },
            "spec": spec,
            "status": {"phase": "Pending", "qosClass": qos_class(spec)},
        }
        if template_meta.get("annotations"):
            pod["metadata"]["annotations"] = dict(template_meta["annotations"])
        for attempt in range(5):
            pod["metadata"]["name"] = (
                meta["name"] + "-" + "".join(random.choices(SAFE_ALPHABET, k=5))
            )
            try:
                created = self.store.create(PODS, pod)
                break
            except ApiError as error:
                if error.reason != "AlreadyExists" or attempt == 4:
                    raise
        record_event(
            self.store,
            rs,
            "SuccessfulCreate",
            f"Created pod: {created['metadata']['name']}",
            component=REPLICASET_COMPONENT,
        )

    def _terminate(self, rs: Obj, pod: Obj) -> None:
        """Delete a pod as the API server does: at once when unbound, else gracefully."""
        if (pod.get("spec") or {}).get("nodeName"):
            pod = {**pod, "metadata": dict(pod["metadata"])}
            grace = int(pod["spec"].get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS))
            pod["metadata"]["deletionTimestamp"] = _rfc3339_in(self.clock.real(grace))
            pod["metadata"]["deletionGracePeriodSeconds"] = grace
            self._schedule_removal(self.store.update(PODS, pod), self.clock.real(grace))
        else:
            self.store.delete(PODS, *_key(pod))
        record_event(
            self.store,
            rs,
            "SuccessfulDelete",
            f"Deleted pod: {pod['metadata']['name']}",
            component=REPLICASET_COMPONENT,
        )

    def _schedule_removal(self, pod: Obj, delay: float | None = None) -> None:
        """Remove a terminating pod when its grace period ends (`delay` real seconds, else by
        its deletionTimestamp), should no kubelet have done so well before."""
        uid = _uid(pod)
        if uid in self._reaping:
            return
        self._reaping.add(uid)
        if delay is None:
            delay = parse_time(pod["metadata"]["deletionTimestamp"]) - time.time()
        namespace, name = _key(pod)
        self.call_later(max(delay, 0.0), lambda: self._remove_pod(namespace, name, uid))

    def _remove_pod(self, namespace: str, name: str, uid: str) -> None:
        self._reaping.discard(uid)
        pod = self.store.find(PODS, namespace, name)
        if pod is not None and _uid(pod) == uid:
            self.store.delete(PODS, namespace, name)

    def _available(self, pod: Obj, min_ready: int) -> bool:
        if not is_pod_ready(pod):
            return False
        if min_ready == 0:
            return True
        since = _ready_condition(pod).get("lastTransitionTime")
        return since is not None and self.world_seconds_since(since) >= min_ready

    def _update_status(self, rs: Obj, active: list[Obj]) -> None:
        min_ready = int(rs["spec"].get("minReadySeconds") or 0)
        template_labels = (rs["spec"]["template"].get("metadata") or {}).get("labels") or {}
        labelled = [
            pod
            for pod in active
            if all(
                (pod["metadata"].get("labels") or {}).get(k) == v
                for k, v in template_labels.items()
            )
        ]
        ready = sum(1 for pod in active if is_pod_ready(pod))
        available = sum(1 for pod in active if self._available(pod, min_ready))
        old = rs.get("status") or {}
        status = _without_zeros(
            {
                "replicas": len(active),
                "fullyLabeledReplicas": len(labelled),
                "readyReplicas": ready,
                "availableReplicas": available,
                "observedGeneration": rs["metadata"].get("generation", 0),
            },
            keep=["replicas"],
        )
        if old.get("conditions"):
            status["conditions"] = old["conditions"]
        if min_ready and ready == spec_replicas(rs) and available != ready:
            self.enqueue_after(_key(rs), min_ready)
        if status != old:
            rs["status"] = status
            self.store.update(REPLICASETS, rs, status_only=True)


# -- the Deployment controller --------------------------------------------------------------


class DeploymentReconciler(Reconciler):
    """Rolls Deployments out through their ReplicaSets and reports their status."""

    name = "deployment-controller"

    def __init__(self, store: ObjectStore, clock: WorldClock, resync_seconds: float) -> None:
        super().__init__(store, clock, resync_seconds)
        # When this controller last wrote progress: key -> (uid, lastUpdateTime, loop time).
        self._progress_marks: dict[Key, tuple[str, str, float]] = {}
        self._templates: dict[tuple[str, int], Obj] = {}

    def template_of(self, rs: Obj) -> Obj:
        """A ReplicaSet's template without the hash, remembered per spec generation."""
        key = (_uid(rs), rs["metadata"].get("generation", 0))
        template = self._templates.get(key)
        if template is None:
            if len(self._templates) > TEMPLATE_CACHE_SIZE:
                self._templates.clear()
            template = self._templates[key] = _rs_template(rs)
        return template

    def keys_for(self, change: Change) -> Iterable[Key]:
        if change.resource is DEPLOYMENTS:
            return [_key(change.new)]
        if change.resource is REPLICASETS:
            keys = []
            for rs in (change.old, change.new):
                ref = controller_of(rs) if rs else None
                if ref is not None and ref.get("kind") == "Deployment":
                    keys.append((rs["metadata"]["namespace"], ref["name"]))
            return keys
        if change.resource is PODS and change.type == "DELETED":
            return _deployment_of_pod(change.new)
        return []

    def all_keys(self) -> Iterable[Key]:
        return _all_keys(self.store, DEPLOYMENTS)

    def sync(self, key: Key) -> None:
        deployment = self.store.find(DEPLOYMENTS, *key)
        if deployment is None:
            self._progress_marks.pop(key, None)
            return
        DeploymentSync(self, deployment).run()

    def mark_progress(self, deployment: Obj) -> None:
        """Remember exactly when this controller recorded progress (timestamps are coarse)."""
        condition = get_condition(deployment.get("status"), PROGRESSING)
        if condition is not None:
            self._progress_marks[_key(deployment)] = (
                _uid(deployment),
                condition["lastUpdateTime"],
                asyncio.get_running_loop().time(),
            )

    def world_seconds_since_progress(self, deployment: Obj, stamp: str) -> float:
        """World seconds since the Progressing condition's lastUpdateTime."""
        mark = self._progress_marks.get(_key(deployment))
        if mark is not None and mark[:2] == (_uid(deployment), stamp):
            return (asyncio.get_running_loop().time() - mark[2]) * self.clock.speed
        return self.world_seconds_since(stamp)


def _set_min_ready(rs: Obj, seconds: int) -> None:
    if seconds:
        rs["spec"]["minReadySeconds"] = seconds
    else:
        rs["spec"].pop("minReadySeconds", None)


def _deployment_of_pod(pod: Obj) -> list[Key]:
    """The Deployment whose ReplicaSet owned a pod, by the `NAME-HASH` naming rule."""
    ref = controller_of(pod)
    pod_hash = (pod["metadata"].get("labels") or {}).get(HASH_LABEL)
    if ref is None or ref.get("kind") != "ReplicaSet" or not pod_hash:
        return []
    suffix = f"-{pod_hash}"
    if not ref["name"].endswith(suffix):
        return []
    return [(pod["metadata"]["namespace"], ref["name"][: -len(suffix)])]


class DeploymentSync:
    """One pass of the deployment controller over one Deployment (its syncDeployment)."""

    def __init__(self, reconciler: DeploymentReconciler, deployment: Obj) -> None:
        self.reconciler = reconciler
        self.store = reconciler.store
        self.d = deployment
        self.rs_list: list[Obj] = []
        self.new_uid: str | None = None
        self._meta_dirty = False
        self._progress_written = False

    # views

    @property
    def new_rs(self) -> Obj | None:
        return next((rs for rs in self.rs_list if _uid(rs) == self.new_uid), None)

    @property
    def old_rss(self) -> list[Obj]:
        return [rs for rs in self.rs_list if _uid(rs) != self.new_uid]

    def _active_old(self) -> list[Obj]:
        return _by_creation(rs for rs in self.old_rss if spec_replicas(rs) > 0)

    @property
    def _status(self) -> Obj:
        return self.d.get("status") or {}

    # the pass

    def run(self) -> None:
        """Scale, roll out or only report, as the Deployment's state asks."""
        spec = self.d["spec"]
        selector = spec.get("selector") or {}
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            self._selecting_all()
            return
        self.rs_list = self._owned_replica_sets()
        self._check_paused_conditions()
        if spec.get("paused") or self._is_scaling_event():
            self._sync()
        elif is_rolling(self.d):
            self._rollout_rolling()
        else:
            self._rollout_recreate()

    def _owned_replica_sets(self) -> list[Obj]:
        """The Deployment's ReplicaSets as stored (read only: `_editable` before a change)."""
        return owned(self.store, REPLICASETS, self.d, self.d["spec"]["selector"])

    def _selecting_all(self) -> None:
        self._event(
            "SelectingAll",
            "This deployment is selecting all pods. A non-empty selector is required.",
            warning=True,
        )
        generation = self.d["metadata"].get("generation", 0)
        if self._status.get("observedGeneration", 0) < generation:
            self.d["status"] = {**self._status, "observedGeneration": generation}
            self._write_deployment()

    # writes

    def _event(self, reason: str, message: str, *, warning: bool = False) -> None:
        record_event(
            self.store, self.d, reason, message, warning=warning, component=DEPLOYMENT_COMPONENT
        )

    def _write_rs(self, rs: Obj) -> Obj:
        updated = self.store.update(REPLICASETS, rs)
        self.rs_list = [updated if _uid(r) == _uid(updated) else r for r in self.rs_list]
        return updated

    def _write_deployment(self) -> None:
        """Write the revision annotation (if changed), then the status subresource."""
        status = self.d.get("status") or {}
        if self._meta_dirty:
            self.d = self.store.update(DEPLOYMENTS, self.d)
            self._meta_dirty = False
        self.d["status"] = status
        self.d = self.store.update(DEPLOYMENTS, self.d, status_only=True)
        if self._progress_written:
            self.reconciler.mark_progress(self.d)
            self._progress_written = False

    def _set_revision(self, value: str) -> bool:
        annotations = self.d["metadata"].setdefault("annotations", {})
        if annotations.get(REVISION) == value:
            return False
        annotations[REVISION] = value
        self._meta_dirty = True
        return True

    def _set_progressing(self, status: Obj, condition: Obj) -> None:
        set_condition(status, condition)
        if get_condition(status, PROGRESSING) is condition:
            self._progress_written = True

    # replica sets and revisions (getAllReplicaSetsAndSyncRevision)

    def _sync_revision(self, create: bool) -> None:
        existing = find_new_replica_set(self.d, self.rs_list, self.reconciler.template_of)
        self.new_uid = _uid(existing) if existing else None
        new_revision = max_revision(self.old_rss) + 1
        if existing is not None:
            self._sync_existing_new_rs(existing, new_revision)
        elif create:
            self._create_new_rs(new_revision)

    def _sync_existing_new_rs(self, rs: Obj, new_revision: int) -> None:
        rs = _editable(rs)
        changed = set_new_rs_annotations(self.d, rs, new_revision, exists=True)
        min_ready = self.d["spec"].get("minReadySeconds") or 0
        if changed or (rs["spec"].get("minReadySeconds") or 0) != min_ready:
            _set_min_ready(rs, min_ready)
            self._write_rs(rs)
            return
        needs_update = self._set_revision(rs["metadata"]["annotations"].get(REVISION, ""))
        status = copy.deepcopy(self._status)
        if progress_deadline(self.d) is not None and get_condition(status, PROGRESSING) is None:
            status.setdefault("conditions", [])
            message = f'Found new replica set "{rs["metadata"]["name"]}"'
            self._set_progressing(status, new_condition(PROGRESSING, "True", FOUND_NEW_RS, message))
            needs_update = True
        if needs_update:
            self.d["status"] = status
            self._write_deployment()

    def _new_rs_object(self, new_revision: int) -> Obj:
        spec = self.d["spec"]
        template = copy.deepcopy(spec["template"])
        template_hash = pod_template_hash(template, self._status.get("collisionCount"))
        template.setdefault("metadata", {})
        template["metadata"]["labels"] = {
            **(template["metadata"].get("labels") or {}),
            HASH_LABEL: template_hash,
        }
        selector = copy.deepcopy(spec["selector"])
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: template_hash}
        rs: Obj = {
            "metadata": {
                "name": f"{self.d['metadata']['name']}-{template_hash}",
                "namespace": self.d["metadata"]["namespace"],
                "labels": dict(template["metadata"]["labels"]),
                "ownerReferences": [controller_ref(self.d)],
            },
            "spec": {"replicas": 0, "selector": selector, "template": template},
        }
        _set_min_ready(rs, spec.get("minReadySeconds") or 0)
        rs["spec"]["replicas"] = new_rs_new_replicas(self.d, [*self.rs_list, rs], rs)
        set_new_rs_annotations(self.d, rs, new_revision, exists=False)
        return rs

    def _create_new_rs(self, new_revision: int) -> None:
        rs = self._new_rs_object(new_revision)
        try:
            created = self.store.create(REPLICASETS, rs)
        except ApiError as error:
            if error.reason != "AlreadyExists":
                raise
            self._adopt_existing(rs["metadata"]["name"], error)
            return
        self.rs_list.append(created)
        self.new_uid = _uid(created)
        name, replicas = created["metadata"]["name"], spec_replicas(created)
        if replicas > 0:
            self._event("ScalingReplicaSet", f"Scaled up replica set {name} from 0 to {replicas}")
        self._set_revision(str(new_revision))
        status = copy.deepcopy(self._status)
        if progress_deadline(self.d) is not None:
            status.setdefault("conditions", [])
            message = f'Created new replica set "{name}"'
            self._set_progressing(
                status, new_condition(PROGRESSING, "True", NEW_RS_CREATED, message)
            )
        self.d["status"] = status
        self._write_deployment()

    def _adopt_existing(self, name: str, error: ApiError) -> None:
        """A ReplicaSet of that name exists: ours with this template, or a hash collision."""
        existing = self.store.find(REPLICASETS, self.d["metadata"]["namespace"], name)
        if (
            existing is not None
            and _owned_by(existing, self.d)
            and equal_ignore_hash(existing["spec"]["template"], self.d["spec"]["template"])
        ):
            if all(_uid(rs) != _uid(existing) for rs in self.rs_list):
                self.rs_list.append(existing)
            self.new_uid = _uid(existing)
            return
        self.d["status"] = {
            **self._status,
            "collisionCount": self._status.get("collisionCount", 0) + 1,
        }
        self._write_deployment()
        raise error

    # scaling

    def _scale_and_record(self, rs: Obj, new_scale: int) -> bool:
        """Scale one ReplicaSet with an event; whether its size changed."""
        current = spec_replicas(rs)
        if current == new_scale:
            return False
        return self._scale_rs(rs, new_scale, "up" if current < new_scale else "down")

    def _scale_rs(self, rs: Obj, new_scale: int, operation: str) -> bool:
        old_scale = spec_replicas(rs)
        desired = spec_replicas(self.d)
        maximum = desired + max_surge(self.d)
        rs = _editable(rs)
        annotations_changed = set_replicas_annotations(rs, desired, maximum)
        if old_scale == new_scale and not annotations_changed:
            return False
        rs["spec"]["replicas"] = new_scale
        self._write_rs(rs)
        if old_scale == new_scale:
            return False
        name = rs["metadata"]["name"]
        self._event(
            "ScalingReplicaSet",
            f"Scaled {operation} replica set {name} from {old_scale} to {new_scale}",
        )
        return True

    def _is_scaling_event(self) -> bool:
        self._sync_revision(create=False)
        desired = spec_replicas(self.d)
        return any(
            spec_replicas(rs) > 0
            and (annotated := _annotation_int(rs, DESIRED_REPLICAS)) is not None
            and annotated != desired
            for rs in self.rs_list
        )

    def _sync(self) -> None:
        """Scale only (a paused Deployment, or a change of replicas), then report status."""
        self._sync_revision(create=False)
        self._scale()
        if self.d["spec"].get("paused"):
            self._cleanup()
        self._sync_status(self._calculate_status())

    def _scale(self) -> None:
        desired = spec_replicas(self.d)
        target = self._active_or_latest()
        if target is not None:
            if spec_replicas(target) != desired:
                self._scale_and_record(target, desired)
            return
        if self._is_saturated(self.new_rs):
            for rs in self._active_old():
                self._scale_and_record(rs, 0)
            return
        if is_rolling(self.d):
            self._scale_proportionally()

    def _active_or_latest(self) -> Obj | None:
        """The only active ReplicaSet, or the newest when none is active (FindActiveOrLatest)."""
        new, olds = self.new_rs, list(reversed(_by_creation(self.old_rss)))
        if new is None and not olds:
            return None
        active = [rs for rs in [*olds, new] if rs is not None and spec_replicas(rs) > 0]
        if not active:
            return new if new is not None else olds[0]
        return active[0] if len(active) == 1 else None

    def _is_saturated(self, rs: Obj | None) -> bool:
        desired = spec_replicas(self.d)
        return (
            rs is not None
            and spec_replicas(rs) == desired
            and _annotation_int(rs, DESIRED_REPLICAS) == desired
            and status_count(rs, "availableReplicas") == desired
        )

    def _scale_proportionally(self) -> None:
        active = [rs for rs in self.rs_list if spec_replicas(rs) > 0]
        desired = spec_replicas(self.d)
        allowed = desired + max_surge(self.d) if desired > 0 else 0
        to_add = allowed - sum(spec_replicas(rs) for rs in active)
        if to_add == 0:
            return
        # Largest first; among equals, newer first when growing and older first when shrinking.
        ordered = _by_creation(active)
        if to_add > 0:
            ordered.reverse()
        ordered.sort(key=spec_replicas, reverse=True)
        added, sizes = 0, {}
        for rs in ordered:
            proportion = self._proportion(rs, to_add, added)
            sizes[_uid(rs)] = spec_replicas(rs) + proportion
            added += proportion
        first = _uid(ordered[0])
        sizes[first] = max(sizes[first] + to_add - added, 0)
        for rs in ordered:
            current = next(r for r in self.rs_list if _uid(r) == _uid(rs))
            self._scale_rs(current, sizes[_uid(rs)], "up" if to_add > 0 else "down")

    def _proportion(self, rs: Obj, to_add: int, added: int) -> int:
        """This ReplicaSet's share of a resize (GetReplicaSetProportion)."""
        if spec_replicas(rs) == 0 or to_add == added:
            return 0
        desired = spec_replicas(self.d)
        if desired == 0:
            fraction = -spec_replicas(rs)
        else:
            before = _annotation_int(rs, MAX_REPLICAS) or self._status.get("replicas", 0)
            if not before:
                return 0
            size = spec_replicas(rs) * (desired + max_surge(self.d)) / before
            fraction = math.floor(size + 0.5) - spec_replicas(rs)
        allowed = to_add - added
        return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)

    # rolling update

    def _rollout_rolling(self) -> None:
        self._sync_revision(create=True)
        if self._reconcile_new_rs() or self._reconcile_old_rss():
            self._sync_rollout_status()
            return
        if deployment_complete(self.d, self._status):
            self._cleanup()
        self._sync_rollout_status()

    def _reconcile_new_rs(self) -> bool:
        new, desired = self.new_rs, spec_replicas(self.d)
        if new is None or spec_replicas(new) == desired:
            return False
        if spec_replicas(new) > desired:
            return self._scale_and_record(new, desired)
        return self._scale_and_record(new, new_rs_new_replicas(self.d, self.rs_list, new))

    def _reconcile_old_rss(self) -> bool:
        active_old = self._active_old()
        if not active_old:
            return False
        new = self.new_rs
        all_pods = sum(spec_replicas(rs) for rs in self.rs_list)
        min_available = spec_replicas(self.d) - max_unavailable(self.d)
        new_unavailable = (
            (spec_replicas(new) - status_count(new, "availableReplicas")) if new else 0
        )
        max_scaled_down = all_pods - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        uids = [_uid(rs) for rs in active_old]
        cleaned = self._cleanup_unhealthy(uids, max_scaled_down)
        scaled = self._scale_down_old(uids)
        return cleaned + scaled > 0

    def _current(self, uids: list[str]) -> list[Obj]:
        by_uid = {_uid(rs): rs for rs in self.rs_list}
        return [by_uid[uid] for uid in uids if uid in by_uid]

    def _cleanup_unhealthy(self, uids: list[str], max_cleanup: int) -> int:
        """Scale old ReplicaSets down by their unavailable pods first."""
        total = 0
        for rs in self._current(uids):
            if total >= max_cleanup:
                break
            replicas, available = spec_replicas(rs), status_count(rs, "availableReplicas")
            if replicas == 0 or replicas == available:
                continue
            count = min(max_cleanup - total, replicas - available)
            self._scale_and_record(rs, replicas - count)
            total += count
        return total

    def _scale_down_old(self, uids: list[str]) -> int:
        """Scale old ReplicaSets down as far as availability allows, oldest first."""
        min_available = spec_replicas(self.d) - max_unavailable(self.d)
        counted = [*self._current(uids), *([self.new_rs] if self.new_rs else [])]
        available = sum(status_count(rs, "availableReplicas") for rs in counted)
        if available <= min_available:
            return 0
        budget, total = available - min_available, 0
        for rs in self._current(uids):
            if total >= budget:
                break
            replicas = spec_replicas(rs)
            if replicas == 0:
                continue
            count = min(replicas, budget - total)
            self._scale_and_record(rs, replicas - count)
            total += count
        return total

    # recreate

    def _rollout_recreate(self) -> None:
        self._sync_revision(create=False)
        scaled_down = False
        for rs in self._active_old():
            scaled_down |= self._scale_and_record(rs, 0)
        if scaled_down or self._old_pods_running():
            self._sync_rollout_status()
            return
        if self.new_rs is None:
            self._sync_revision(create=True)
        if self.new_rs is not None:
            self._scale_and_record(self.new_rs, spec_replicas(self.d))
        if deployment_complete(self.d, self._status):
            self._cleanup()
        self._sync_rollout_status()

    def _old_pods_running(self) -> bool:
        if sum(status_count(rs, "replicas") for rs in self.old_rss) > 0:
            return True
        return any(
            (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
            for rs in self.old_rss
            for pod in owned(self.store, PODS, rs, self.d["spec"]["selector"])
        )

    # history

    def _cleanup(self) -> None:
        """Delete the oldest old ReplicaSets at zero beyond revisionHistoryLimit."""
        limit = self.d["spec"].get("revisionHistoryLimit", DEFAULT_REVISION_HISTORY_LIMIT)
        if limit is None:
            return
        alive = [rs for rs in self.old_rss if not rs["metadata"].get("deletionTimestamp")]
        excess = len(alive) - int(limit)
        if excess <= 0:
            return
        by_revision = sorted(
            alive,
            key=lambda rs: (
                revision(rs),
                parse_time(rs["metadata"]["creationTimestamp"]),
                rs["metadata"]["name"],
            ),
        )
        for rs in by_revision[:excess]:
            if (
                status_count(rs, "replicas")
                or spec_replicas(rs)
                or rs["metadata"].get("generation", 0) > status_count(rs, "observedGeneration")
            ):
                continue
            self.store.delete(REPLICASETS, *_key(rs))
            self.rs_list = [r for r in self.rs_list if _uid(r) != _uid(rs)]

    # status

    def _calculate_status(self) -> Obj:
        available = sum(status_count(rs, "availableReplicas") for rs in self.rs_list)
        total = sum(spec_replicas(rs) for rs in self.rs_list)
        status: Obj = _without_zeros(
            {
                "observedGeneration": self.d["metadata"].get("generation", 0),
                "replicas": sum(status_count(rs, "replicas") for rs in self.rs_list),
                "updatedReplicas": status_count(self.new_rs, "replicas"),
                "readyReplicas": sum(status_count(rs, "readyReplicas") for rs in self.rs_list),
                "availableReplicas": available,
                "unavailableReplicas": max(total - available, 0),
            }
        )
        status["conditions"] = copy.deepcopy(self._status.get("conditions") or [])
        if "collisionCount" in self._status:
            status["collisionCount"] = self._status["collisionCount"]
        if available >= spec_replicas(self.d) - max_unavailable(self.d):
            condition = new_condition(
                AVAILABLE, "True", MIN_AVAILABLE, "Deployment has minimum availability."
            )
        else:
            condition = new_condition(
                AVAILABLE,
                "False",
                MIN_UNAVAILABLE,
                "Deployment does not have minimum availability.",
            )
        set_condition(status, condition)
        return status

    def _sync_status(self, status: Obj) -> None:
        if status != self._status:
            self.d["status"] = status
            self._write_deployment()

    def _sync_rollout_status(self) -> None:
        status = self._calculate_status()
        deadline = progress_deadline(self.d)
        if deadline is None:
            remove_condition(status, PROGRESSING)
        current = get_condition(self._status, PROGRESSING)
        complete_before = (
            status.get("replicas", 0) == status.get("updatedReplicas", 0)
            and current is not None
            and current.get("reason") == NEW_RS_AVAILABLE
        )
        if deadline is not None and not complete_before:
            self._update_progress(status, current, deadline)
        if status == self._status:
            self._requeue_if_stuck(status)
            return
        self.d["status"] = status
        self._write_deployment()

    def _update_progress(self, status: Obj, current: Obj | None, deadline: int) -> None:
        name = self.new_rs["metadata"]["name"] if self.new_rs else self.d["metadata"]["name"]
        subject = f'ReplicaSet "{name}"' if self.new_rs else f'Deployment "{name}"'
        if deployment_complete(self.d, status):
            message = f"{subject} has successfully progressed."
            self._set_progressing(
                status, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, message)
            )
        elif deployment_progressing(self.d, status):
            condition = new_condition(PROGRESSING, "True", RS_UPDATED, f"{subject} is progressing.")
            if current is not None:
                if current["status"] == "True":
                    condition["lastTransitionTime"] = current["lastTransitionTime"]
                remove_condition(status, PROGRESSING)
            self._set_progressing(status, condition)
        elif self._timed_out(status, deadline):
            message = f"{subject} has timed out progressing."
            self._set_progressing(status, new_condition(PROGRESSING, "False", TIMED_OUT, message))

    def _timed_out(self, status: Obj, deadline: int) -> bool:
        condition = get_condition(status, PROGRESSING)
        if condition is None or condition.get("reason") == NEW_RS_AVAILABLE:
            return False
        if condition.get("reason") == TIMED_OUT:
            return True
        elapsed = self.reconciler.world_seconds_since_progress(self.d, condition["lastUpdateTime"])
        return elapsed > deadline

    def _requeue_if_stuck(self, status: Obj) -> None:
        """Come back when the progress deadline would pass (requeueStuckDeployment)."""
        deadline = progress_deadline(self.d)
        condition = get_condition(self._status, PROGRESSING)
        if deadline is None or condition is None:
            return
        if deployment_complete(self.d, status) or condition.get("reason") == TIMED_OUT:
            return
        elapsed = self.reconciler.world_seconds_since_progress(self.d, condition["lastUpdateTime"])
        self.reconciler.enqueue_after(_key(self.d), max(deadline - elapsed, 0.0) + 1.0)

    # pausing

    def _check_paused_conditions(self) -> None:
        if progress_deadline(self.d) is None:
            return
        condition = get_condition(self._status, PROGRESSING)
        if condition is not None and condition.get("reason") == TIMED_OUT:
            return
        paused_noted = condition is not None and condition.get("reason") == PAUSED
        paused = bool(self.d["spec"].get("paused"))
        if paused == paused_noted:
            return
        status = copy.deepcopy(self._status)
        status.setdefault("conditions", [])
        if paused:
            condition = new_condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused")
        else:
            condition = new_condition(PROGRESSING, "Unknown", RESUMED, "Deployment is resumed")
        self._set_progressing(status, condition)
        self.d["status"] = status
        self._write_deployment()


# -- the controller manager -----------------------------------------------------------------


class DeploymentController:
    """The workload half of the control plane: Deployment and ReplicaSet controllers plus the
    scheduler, all on the running event loop.

    `DeploymentController(store, clock).start()` from the loop; `await stop()` cancels its
    tasks and timers. `resync_seconds` (world time) bounds how late a missed change is noticed.
    """

    def __init__(
        self, store: ObjectStore, clock: WorldClock | None = None, *, resync_seconds: float = 30.0
    ) -> None:
        self.store = store
        self.clock = clock or WorldClock()
        self.deployments = DeploymentReconciler(store, self.clock, resync_seconds)
        self.replica_sets = ReplicaSetReconciler(store, self.clock, resync_seconds)
        self.scheduler = Scheduler(store)

    def start(self) -> None:
        """Start the scheduler and both controllers (must run on the event loop)."""
        self.scheduler.start()
        self.replica_sets.start()
        self.deployments.start()

    async def stop(self) -> None:
        """Stop everything started by `start()`."""
        await self.deployments.stop()
        await self.replica_sets.stop()
        await self.scheduler.stop()
