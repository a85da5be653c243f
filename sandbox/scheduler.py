"""The sandbox's kube-scheduler: binds each new pod to a node, as `default-scheduler` does.

A node fits when it is Ready and schedulable, its taints are tolerated, and it matches the
pod's `nodeSelector` and required node affinity (HolmOS keeps services off the storage node
with `kubernetes.io/hostname NotIn openmediavault`). Among fitting nodes the one running the
fewest pods of the same service wins, then the one running the fewest pods, then chance.
Binding sets `spec.nodeName` and the `PodScheduled` condition and records `Scheduled`; a pod
no node fits gets `PodScheduled=False` (Unschedulable) and a `FailedScheduling` warning, and
is tried again when a node changes. The kubelet takes over from `spec.nodeName`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.events import record_event
from sandbox.resources import NODES, PODS, ResourceType
from sandbox.store import ApiError, Change, ObjectStore, now_rfc3339

Obj = dict[str, Any]
Key = tuple[str, str]

SCHEDULER_NAME = "default-scheduler"
HASH_LABEL = "pod-template-hash"
_TERMINAL_PHASES = ("Succeeded", "Failed")

log = logging.getLogger(__name__)


def peek(
    store: ObjectStore,
    resource: ResourceType,
    visit: Callable[[Obj], None],
    namespace: str | None = None,
) -> None:
    """Call `visit` on every stored object without the copies `list` makes (read only)."""
    store.list(resource, namespace, lambda obj: visit(obj) is not None)


@dataclass(frozen=True)
class Placement:
    """Where a pod runs, and which service's pods it counts with."""

    namespace: str
    node: str
    service: frozenset[tuple[str, str]]


def _placement(pod: Obj, node: str) -> Placement:
    labels = dict(pod["metadata"].get("labels") or {})
    labels.pop(HASH_LABEL, None)
    return Placement(pod["metadata"].get("namespace", ""), node, frozenset(labels.items()))


def placements(store: ObjectStore) -> list[Placement]:
    """Every bound pod that has not finished."""
    found: list[Placement] = []

    def note(pod: Obj) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and (pod.get("status") or {}).get("phase") not in _TERMINAL_PHASES:
            found.append(_placement(pod, node))

    peek(store, PODS, note)
    return found


def needs_node(pod: Obj) -> bool:
    """Whether this scheduler should place the pod: unbound, not terminating, ours by name."""
    spec, meta = pod.get("spec") or {}, pod["metadata"]
    return (
        not spec.get("nodeName")
        and not meta.get("deletionTimestamp")
        and spec.get("schedulerName", SCHEDULER_NAME) == SCHEDULER_NAME
        and (pod.get("status") or {}).get("phase") not in _TERMINAL_PHASES
    )


def _node_ready(node: Obj) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _expression_matches(expression: Obj, values_by_key: dict[str, str]) -> bool:
    key, operator = expression.get("key", ""), expression.get("operator", "")
    values = expression.get("values") or []
    present = key in values_by_key
    value = values_by_key.get(key, "")
    if operator == "In":
        return present and value in values
    if operator == "NotIn":
        return not present or value not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt") and present and len(values) == 1:
        try:
            left, right = int(value), int(values[0])
        except ValueError:
            return False
        return left > right if operator == "Gt" else left < right
    return False


def _term_matches(term: Obj, node: Obj) -> bool:
    """A node selector term: all its expressions hold; an empty term matches nothing."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    labels = node["metadata"].get("labels") or {}
    node_fields = {"metadata.name": node["metadata"]["name"]}
    return all(_expression_matches(e, labels) for e in expressions) and all(
        _expression_matches(f, node_fields) for f in fields
    )


def matches_node_selection(pod: Obj, node: Obj) -> bool:
    """The pod's `nodeSelector` and required node affinity both accept the node."""
    spec = pod.get("spec") or {}
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(key) != value for key, value in (spec.get("nodeSelector") or {}).items()):
        return False
    required = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    ).get("nodeSelectorTerms")
    if required is None:
        return True
    return any(_term_matches(term, node) for term in required)


def _tolerated(taint: Obj, tolerations: list[Obj]) -> bool:
    for toleration in tolerations:
        if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
            continue
        if toleration.get("operator", "Equal") == "Exists":
            if not toleration.get("key") or toleration["key"] == taint.get("key"):
                return True
        elif toleration.get("key") == taint.get("key") and toleration.get("value", "") == taint.get(
            "value", ""
        ):
            return True
    return False


def misfit(pod: Obj, node: Obj) -> str | None:
    """Why the pod cannot go to the node (the scheduler's wording), or None if it fits."""
    if (node.get("spec") or {}).get("unschedulable"):
        return "node(s) were unschedulable"
    if not _node_ready(node):
        return "node(s) were not ready"
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerated(
            taint, tolerations
        ):
            return f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"
    if not matches_node_selection(pod, node):
        return "node(s) didn't match Pod's node affinity/selector"
    return None


def choose_node(pod: Obj, nodes: list[Obj], placed: list[Placement]) -> str | None:
    """The node to bind the pod to, or None when no node fits."""
    fitting = [node["metadata"]["name"] for node in nodes if misfit(pod, node) is None]
    if not fitting:
        return None
    mine = _placement(pod, "")
    total = Counter(p.node for p in placed)
    same_service = Counter(
        p.node
        for p in placed
        if mine.service and (p.namespace, p.service) == (mine.namespace, mine.service)
    )
    best = min((same_service[name], total[name]) for name in fitting)
    return random.choice([name for name in fitting if (same_service[name], total[name]) == best])


def unschedulable_message(pod: Obj, nodes: list[Obj]) -> str:
    """`0/13 nodes are available: ...`, as the scheduler explains a pod it cannot place."""
    reasons = Counter(reason for node in nodes if (reason := misfit(pod, node)) is not None)
    detail = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    total = len(nodes)
    return (
        f"0/{total} nodes are available: {detail}. preemption: 0/{total} nodes are available: "
        f"{total} Preemption is not helpful for scheduling."
    )


class Scheduler:
    """Binds pods without a node; driven by store notifications, batched on the event loop."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._pending: set[Key] = set()
        self._rescan = False
        self._handle: asyncio.Handle | None = None
        self._listening = False
        self._running = False

    def start(self) -> None:
        """Start placing pods (call on the event loop); pods already waiting are placed first."""
        if not self._listening:
            self.store.add_listener(self._on_change)
            self._listening = True
        self._running = True
        self._rescan = True
        self._wake()

    async def stop(self) -> None:
        """Stop placing pods; nothing is left scheduled on the loop."""
        self._running = False
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._pending.clear()

    def _on_change(self, change: Change) -> None:
        if not self._running:
            return
        if change.resource is NODES and change.type != "DELETED":
            self._rescan = True
            self._wake()
        elif change.resource is PODS and change.type != "DELETED" and needs_node(change.new):
            meta = change.new["metadata"]
            self._pending.add((meta["namespace"], meta["name"]))
            self._wake()

    def _wake(self) -> None:
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._handle = None
        if not self._running:
            return
        if self._rescan:
            self._rescan = False
            peek(self.store, PODS, self._note_if_unbound)
        pending, self._pending = sorted(self._pending), set()
        nodes, placed = self.store.list(NODES), placements(self.store)
        for namespace, name in pending:
            pod = self.store.find(PODS, namespace, name)
            if pod is None or not needs_node(pod):
                continue
            try:
                node = self._schedule(pod, nodes, placed)
                if node is not None:
                    placed.append(_placement(pod, node))
            except ApiError as error:
                log.debug("scheduling %s/%s: %s; retrying", namespace, name, error.message)
                self._pending.add((namespace, name))
                self._wake()

    def _note_if_unbound(self, pod: Obj) -> None:
        if needs_node(pod):
            self._pending.add((pod["metadata"]["namespace"], pod["metadata"]["name"]))

    def _schedule(self, pod: Obj, nodes: list[Obj], placed: list[Placement]) -> str | None:
        """Bind the pod; the node's name, or None when it had to be marked unschedulable."""
        node = choose_node(pod, nodes, placed)
        if node is None:
            self._mark_unschedulable(pod, nodes)
            return None
        pod["spec"]["nodeName"] = node
        bound = self.store.update(PODS, pod)
        bound["status"] = _with_scheduled_condition(bound.get("status") or {}, "True")
        bound = self.store.update(PODS, bound, status_only=True)
        meta = bound["metadata"]
        record_event(
            self.store,
            bound,
            "Scheduled",
            f"Successfully assigned {meta['namespace']}/{meta['name']} to {node}",
            component=SCHEDULER_NAME,
        )
        return node

    def _mark_unschedulable(self, pod: Obj, nodes: list[Obj]) -> None:
        message = unschedulable_message(pod, nodes)
        current = next(
            (
                c
                for c in (pod.get("status") or {}).get("conditions") or []
                if c.get("type") == "PodScheduled"
            ),
            None,
        )
        if current is not None and current.get("message") == message:
            return
        pod["status"] = _with_scheduled_condition(
            pod.get("status") or {}, "False", "Unschedulable", message
        )
        updated = self.store.update(PODS, pod, status_only=True)
        record_event(
            self.store, updated, "FailedScheduling", message, warning=True, component=SCHEDULER_NAME
        )


def _with_scheduled_condition(
    status: Obj, value: str, reason: str | None = None, message: str | None = None
) -> Obj:
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    condition: Obj = {
        "type": "PodScheduled",
        "status": value,
        "lastProbeTime": None,
        "lastTransitionTime": now_rfc3339(),
    }
    if reason:
        condition["reason"], condition["message"] = reason, message
    return {
        **status,
        "phase": status.get("phase", "Pending"),
        "conditions": [*conditions, condition],
    }
