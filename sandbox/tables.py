"""Server-side printing: stored objects as the `meta.k8s.io/v1` Tables `kubectl get` asks for.

Columns and cells follow the API server's own printers (Kubernetes 1.32,
`pkg/printers/internalversion`). The server always prints the wide columns; kubectl hides
those with priority 1 unless run with `-o wide`. Kinds without a printer get the generic
convertor's NAME and CREATED AT columns.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.resources import (
    DEPLOYMENTS,
    ENDPOINTS,
    EVENTS,
    NAMESPACES,
    NODES,
    PODS,
    REPLICASETS,
    SERVICES,
    ResourceType,
)

Obj = dict[str, Any]
Cell = str | int
TABLE_API_VERSION = "meta.k8s.io/v1"
INCLUDE_OBJECT_VALUES = ("None", "Metadata", "Object")

NONE = "<none>"
UNKNOWN = "<unknown>"
_ZERO_TIME = "0001-01-01T00:00:00Z"
_MORE_ENDPOINTS_AFTER = 3
_NODE_ROLE_PREFIX = "node-role.kubernetes.io/"
_NODE_ROLE_LABEL = "kubernetes.io/role"
_NODE_LOST = "NodeLost"
_TERMINAL_PHASES = ("Succeeded", "Failed")


# --- time -------------------------------------------------------------------------------


def human_duration(delta: timedelta) -> str:
    """`delta` the way `k8s.io/apimachinery/pkg/util/duration.HumanDuration` writes it."""
    seconds = int(delta.total_seconds())  # truncates toward zero, like Go's int()
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return _two_units(minutes, "m", seconds % 60, "s")
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return _two_units(hours, "h", minutes % 60, "m")
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return _two_units(days, "d", hours % 24, "h")
    if hours < 24 * 365 * 2:
        return f"{days}d"
    if hours < 24 * 365 * 8:
        return _two_units(days // 365, "y", days % 365, "d")
    return f"{days // 365}y"


def _two_units(major: int, major_unit: str, minor: int, minor_unit: str) -> str:
    return f"{major}{major_unit}{minor}{minor_unit}" if minor else f"{major}{major_unit}"


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (`Time` or `MicroTime`) as an aware datetime; None if absent."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _since(value: Any, now: datetime) -> str:
    """HumanDuration since a timestamp, `<unknown>` when there is none."""
    moment = value if isinstance(value, datetime) else parse_time(value)
    return UNKNOWN if moment is None else human_duration(now - moment)


# --- small helpers ----------------------------------------------------------------------


def _dig(obj: Mapping[str, Any] | None, *path: str) -> Any:
    """`obj[path[0]][path[1]]...`, or None where any step is missing or null."""
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _name(obj: Obj) -> str:
    return _dig(obj, "metadata", "name") or ""


def _age(obj: Obj, now: datetime) -> str:
    return _since(_dig(obj, "metadata", "creationTimestamp"), now)


def _format_labels(labels: Mapping[str, str] | None) -> str:
    """`labels.FormatLabels`: sorted `k=v` pairs, `<none>` when empty."""
    return ",".join(sorted(f"{key}={value}" for key, value in (labels or {}).items())) or NONE


_OPERATORS: dict[str, Callable[[str, str], str]] = {
    "In": lambda key, values: f"{key} in ({values})",
    "NotIn": lambda key, values: f"{key} notin ({values})",
    "Exists": lambda key, _: key,
    "DoesNotExist": lambda key, _: f"!{key}",
}


def _label_selector(selector: Mapping[str, Any] | None) -> str | None:
    """A `LabelSelector` as `labels.Selector.String()` writes it; None if it is invalid."""
    requirements = [
        (key, f"{key}={value}") for key, value in (_dig(selector, "matchLabels") or {}).items()
    ]
    for expression in _dig(selector, "matchExpressions") or []:
        key, render = expression.get("key", ""), _OPERATORS.get(expression.get("operator"))
        if render is None:
            return None
        requirements.append((key, render(key, ",".join(sorted(expression.get("values") or [])))))
    return ",".join(text for _, text in sorted(requirements, key=lambda pair: pair[0]))


def _layout_containers(obj: Obj) -> list[Cell]:
    """The CONTAINERS and IMAGES cells of a workload's pod template."""
    containers = _dig(obj, "spec", "template", "spec", "containers") or []
    return [
        ",".join(container.get("name", "") for container in containers),
        ",".join(container.get("image", "") for container in containers),
    ]


def _condition_true(conditions: Iterable[Obj] | None, kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions or [])


# --- columns ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A `TableColumnDefinition`."""

    name: str
    description: str
    type: str = "string"
    format: str = ""
    priority: int = 0

    def definition(self) -> Obj:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


def _wide(name: str, description: str, **kwargs: Any) -> Column:
    return Column(name, description, priority=1, **kwargs)


_NAME_DOC = (
    "Name must be unique within a namespace. Is required when creating resources, although "
    "some resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_CREATED_DOC = (
    "CreationTimestamp is a timestamp representing the server time when this object was "
    "created. It is not guaranteed to be set in happens-before order across separate "
    "operations. Clients may not set this value. It is represented in RFC3339 form and is in "
    "UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
_RC_DOC = (
    "More info: https://kubernetes.io/docs/concepts/workloads/controllers/"
    "replicationcontroller/#what-is-a-replicationcontroller"
)
_NODE_ADDRESSES_DOC = (
    "List of addresses reachable to the node. Queried from cloud provider, if available. More "
    "info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field "
    "is declared as mergeable, but the merge key is not sufficiently unique, which can cause "
    "data corruption when it is merged. Callers should instead use a full-replacement patch. "
    "See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can "
    "change during the lifetime of a Node. However, there are some exceptions where this may "
    "not be possible, such as Pods that inherit a Node's address in its own status or "
    "consumers of the downward API (status.hostIP)."
)

NAME = Column("Name", _NAME_DOC, format="name")
AGE = Column("Age", _CREATED_DOC)
CONTAINERS = _wide("Containers", "Names of each container in the template.")
IMAGES = _wide("Images", "Images referenced by each container in the template.")

POD_COLUMNS = (
    NAME,
    Column("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    Column("Status", "The aggregate status of the containers in this pod."),
    Column(
        "Restarts",
        "The number of times the containers in this pod have been restarted and when the last "
        "container in this pod has restarted.",
    ),
    AGE,
    _wide(
        "IP",
        "podIP address allocated to the pod. Routable at least within the cluster. Empty if "
        "not yet allocated.",
    ),
    _wide(
        "Node",
        "NodeName indicates in which node this pod is scheduled. If empty, this pod is a "
        "candidate for scheduling by the scheduler defined in schedulerName. Once this field is "
        "set, the kubelet for this node becomes responsible for the lifecycle of this pod. This "
        "field should not be used to express a desire for the pod to be scheduled on a specific "
        "node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename",
    ),
    _wide(
        "Nominated Node",
        "nominatedNodeName is set only when this pod preempts other pods on the node, but it "
        "cannot be scheduled right away as preemption victims receive their graceful "
        "termination periods. This field does not guarantee that the pod will be scheduled on "
        "this node. Scheduler may decide to place the pod elsewhere if other nodes become "
        "available sooner. Scheduler may also decide to give the resources on this node to a "
        "higher priority pod that is created after preemption. As a result, this field may be "
        "different than PodSpec.nodeName when the pod is scheduled.",
    ),
    _wide(
        "Readiness Gates",
        "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready "
        "when all its containers are ready AND all conditions specified in the readiness gates "
        'have status equal to "True" More info: '
        "https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates",
    ),
)
DEPLOYMENT_COLUMNS = (
    NAME,
    Column("Ready", "Number of the pod with ready state"),
    Column(
        "Up-to-date",
        "Total number of non-terminated pods targeted by this deployment that have the desired "
        "template spec.",
    ),
    Column(
        "Available",
        "Total number of available pods (ready for at least minReadySeconds) targeted by this "
        "deployment.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    _wide(
        "Selector",
        "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be "
        "the ones affected by this deployment.",
    ),
)
REPLICASET_COLUMNS = (
    NAME,
    Column(
        "Desired",
        "Replicas is the number of desired replicas. This is a pointer to distinguish between "
        f"explicit zero and unspecified. Defaults to 1. {_RC_DOC}",
        type="integer",
    ),
    Column(
        "Current",
        f"Replicas is the most recently observed number of replicas. {_RC_DOC}",
        type="integer",
    ),
    Column("Ready", "The number of ready replicas for this replica set.", type="integer"),
    AGE,
    CONTAINERS,
    IMAGES,
    _wide(
        "Selector",
        "Selector is a label query over pods that should match the replica count. If the "
        "selector is empty, it is defaulted to the labels present on the pod template. Label "
        "keys and values that must match in order to be controlled by this replica set. More "
        "info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/"
        "#label-selectors",
    ),
)
NODE_COLUMNS = (
    NAME,
    Column("Status", "The status of the node"),
    Column("Roles", "The roles of the node"),
    AGE,
    Column("Version", "Kubelet Version reported by the node."),
    _wide("Internal-IP", _NODE_ADDRESSES_DOC),
    _wide("External-IP", _NODE_ADDRESSES_DOC),
    _wide(
        "OS-Image",
        "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
    ),
    _wide(
        "Kernel-Version",
        "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
    ),
    _wide(
        "Container-Runtime",
        "ContainerRuntime Version reported by the node through runtime remote API (e.g. "
        "containerd://1.4.2).",
    ),
)
EVENT_COLUMNS = (
    Column("Last Seen", "The time at which the most recent occurrence of this event was recorded."),
    Column("Type", "Type of this event (Normal, Warning), new types could be added in the future"),
    Column(
        "Reason",
        "This should be a short, machine understandable string that gives the reason for the "
        "transition into the object's current status.",
    ),
    Column("Object", "The object that this event is about."),
    _wide(
        "Subobject",
        "If referring to a piece of an object instead of an entire object, this string should "
        "contain a valid JSON/Go field access statement, such as "
        "desiredState.manifest.containers[2]. For example, if the object reference is to a "
        'container within a pod, this would take on a value like: "spec.containers{name}" '
        '(where "name" refers to the name of the container that triggered the event) or if no '
        'container name is specified "spec.containers[2]" (container with index 2 in this '
        "pod). This syntax is chosen only to have some well-defined way of referencing a part "
        "of an object.",
    ),
    _wide(
        "Source",
        "The component reporting this event. Should be a short machine understandable string.",
    ),
    Column("Message", "A human-readable description of the status of this operation."),
    _wide(
        "First Seen",
        "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
    ),
    _wide("Count", "The number of times this event has occurred."),
    _wide("Name", _NAME_DOC, format="name"),
)
SERVICE_COLUMNS = (
    NAME,
    Column(
        "Type",
        "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are "
        'ExternalName, ClusterIP, NodePort, and LoadBalancer. "ClusterIP" allocates a '
        "cluster-internal IP address for load-balancing to endpoints. Endpoints are determined "
        "by the selector or if that is not specified, by manual construction of an Endpoints "
        'object or EndpointSlice objects. If clusterIP is "None", no virtual IP is allocated '
        "and the endpoints are published as a set of endpoints rather than a virtual IP. "
        '"NodePort" builds on ClusterIP and allocates a port on every node which routes to the '
        'same endpoints as the clusterIP. "LoadBalancer" builds on NodePort and creates an '
        "external load-balancer (if supported in the current cloud) which routes to the same "
        'endpoints as the clusterIP. "ExternalName" aliases this service to the specified '
        "externalName. Several other fields do not apply to ExternalName services. More info: "
        "https://kubernetes.io/docs/concepts/services-networking/service/"
        "#publishing-services-service-types",
    ),
    Column(
        "Cluster-IP",
        "clusterIP is the IP address of the service and is usually assigned randomly. If an "
        "address is specified manually, is in-range (as per system configuration), and is not "
        "in use, it will be allocated to the service; otherwise creation of the service will "
        "fail. This field may not be changed through updates unless the type field is also "
        "being changed to ExternalName (which requires this field to be blank) or the type "
        "field is being changed from ExternalName (in which case this field may optionally be "
        'specified, as describe above).  Valid values are "None", empty string (""), or a '
        'valid IP address. Setting this to "None" makes a "headless service" (no virtual IP), '
        "which is useful when direct endpoint connections are preferred and proxying is not "
        "required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field "
        "is specified when creating a Service of type ExternalName, creation will fail. This "
        "field will be wiped when updating a Service to type ExternalName. More info: "
        "https://kubernetes.io/docs/concepts/services-networking/service/"
        "#virtual-ips-and-service-proxies",
    ),
    Column(
        "External-IP",
        "externalIPs is a list of IP addresses for which nodes in the cluster will also accept "
        "traffic for this service.  These IPs are not managed by Kubernetes.  The user is "
        "responsible for ensuring that traffic arrives at a node with this IP.  A common "
        "example is external load-balancers that are not part of the Kubernetes system.",
    ),
    Column(
        "Port(s)",
        "The list of ports that are exposed by this service. More info: "
        "https://kubernetes.io/docs/concepts/services-networking/service/"
        "#virtual-ips-and-service-proxies",
    ),
    AGE,
    _wide(
        "Selector",
        "Route service traffic to pods with label keys and values matching this selector. If "
        "empty or not present, the service is assumed to have an external process managing its "
        "endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, "
        "NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: "
        "https://kubernetes.io/docs/concepts/services-networking/service/",
    ),
)
ENDPOINTS_COLUMNS = (
    NAME,
    Column(
        "Endpoints",
        "The set of all endpoints is the union of all subsets. Addresses are placed into "
        "subsets according to the IPs they share. A single address with multiple ports, some "
        "of which are ready and some of which are not (because they come from different "
        "containers) will result in the address being displayed in different subsets for the "
        "different ports. No address will appear in both Addresses and NotReadyAddresses in "
        "the same subset. Sets of addresses and ports that comprise a service.",
    ),
    AGE,
)
NAMESPACE_COLUMNS = (NAME, Column("Status", "The status of the namespace"), AGE)
DEFAULT_COLUMNS = (NAME, Column("Created At", _CREATED_DOC, type="date"))


# --- pods -------------------------------------------------------------------------------


@dataclass
class _Restarts:
    """Restart count and the latest `lastState.terminated.finishedAt` over some containers."""

    count: int = 0
    last: datetime | None = None

    def add(self, container_status: Obj) -> None:
        self.count += _int(container_status.get("restartCount"))
        finished = parse_time(_dig(container_status, "lastState", "terminated", "finishedAt"))
        if finished is not None and (self.last is None or finished > self.last):
            self.last = finished

    def render(self, now: datetime) -> str:
        if self.count and self.last is not None:
            return f"{self.count} ({_since(self.last, now)} ago)"
        return str(self.count)


def _terminated_reason(terminated: Obj) -> str:
    """A terminated state's reason, else `Signal:N` or `ExitCode:N`."""
    if terminated.get("reason"):
        return terminated["reason"]
    if _int(terminated.get("signal")):
        return f"Signal:{terminated['signal']}"
    return f"ExitCode:{_int(terminated.get('exitCode'))}"


def pod_status(pod: Obj, now: datetime) -> tuple[str, str, str]:
    """The READY, STATUS and RESTARTS cells of `printPod`."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    conditions = status.get("conditions") or []
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    if any(
        c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated" for c in conditions
    ):
        reason = "SchedulingGated"

    init_containers = spec.get("initContainers") or []
    sidecars = {c.get("name") for c in init_containers if c.get("restartPolicy") == "Always"}
    total = len(spec.get("containers") or []) + len(sidecars)
    ready = 0

    every_init, sidecar_only = _Restarts(), _Restarts()
    initializing = False
    for index, container in enumerate(status.get("initContainerStatuses") or []):
        every_init.add(container)
        is_sidecar = container.get("name") in sidecars
        if is_sidecar:
            sidecar_only.add(container)
        state = container.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting") or {}
        if terminated is not None and _int(terminated.get("exitCode")) == 0:
            continue
        if is_sidecar and container.get("started"):
            ready += bool(container.get("ready"))
            continue
        if terminated is not None:
            reason = "Init:" + _terminated_reason(terminated)
        elif waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{index}/{len(init_containers)}"
        initializing = True
        break

    restarts = every_init
    if not initializing or _condition_true(conditions, "Initialized"):
        restarts, has_running = sidecar_only, False
        for container in reversed(status.get("containerStatuses") or []):
            restarts.add(container)
            state = container.get("state") or {}
            if (state.get("waiting") or {}).get("reason"):
                reason = state["waiting"]["reason"]
            elif state.get("terminated") is not None:
                reason = _terminated_reason(state["terminated"])
            elif container.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(conditions, "Ready") else "NotReady"

    if _dig(pod, "metadata", "deletionTimestamp") is not None:
        if status.get("reason") == _NODE_LOST:
            reason = "Unknown"
        elif phase not in _TERMINAL_PHASES:
            reason = "Terminating"
    return f"{ready}/{total}", reason, restarts.render(now)


def _readiness_gates(pod: Obj) -> str:
    gates = _dig(pod, "spec", "readinessGates") or []
    if not gates:
        return NONE
    conditions = _dig(pod, "status", "conditions") or []
    passed = 0
    for gate in gates:
        match = next((c for c in conditions if c.get("type") == gate.get("conditionType")), None)
        passed += match is not None and match.get("status") == "True"
    return f"{passed}/{len(gates)}"


def _pod_cells(pod: Obj, now: datetime) -> list[Cell]:
    status = pod.get("status") or {}
    pod_ips = status.get("podIPs") or []
    pod_ip = (pod_ips[0].get("ip") if pod_ips else status.get("podIP")) or NONE
    return [
        _name(pod),
        *pod_status(pod, now),
        _age(pod, now),
        pod_ip,
        _dig(pod, "spec", "nodeName") or NONE,
        status.get("nominatedNodeName") or NONE,
        _readiness_gates(pod),
    ]


_POD_ROW_CONDITIONS = {
    "Succeeded": "The pod has completed successfully.",
    "Failed": "The pod failed.",
}


def _pod_conditions(pod: Obj) -> list[Obj]:
    """The `Completed` row condition the server sets on finished pods."""
    phase = _dig(pod, "status", "phase")
    if phase not in _POD_ROW_CONDITIONS:
        return []
    message = _POD_ROW_CONDITIONS[phase]
    return [{"type": "Completed", "status": "True", "reason": phase, "message": message}]


# --- workloads --------------------------------------------------------------------------


def _deployment_cells(deployment: Obj, now: datetime) -> list[Cell]:
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    selector = _label_selector(spec.get("selector"))
    return [
        _name(deployment),
        f"{_int(status.get('readyReplicas'))}/{_int(spec.get('replicas'), 1)}",
        _int(status.get("updatedReplicas")),
        _int(status.get("availableReplicas")),
        _age(deployment, now),
        *_layout_containers(deployment),
        "<invalid>" if selector is None else selector,
    ]


def _replicaset_cells(replicaset: Obj, now: datetime) -> list[Cell]:
    spec, status = replicaset.get("spec") or {}, replicaset.get("status") or {}
    selector = _label_selector(spec.get("selector"))
    return [
        _name(replicaset),
        _int(spec.get("replicas"), 1),
        _int(status.get("replicas")),
        _int(status.get("readyReplicas")),
        _age(replicaset, now),
        *_layout_containers(replicaset),
        "<error>" if selector is None else selector or NONE,
    ]


# --- nodes ------------------------------------------------------------------------------


def _node_status(node: Obj) -> str:
    readiness = [c for c in _dig(node, "status", "conditions") or [] if c.get("type") == "Ready"]
    if not readiness:
        status = ["Unknown"]
    else:  # the last Ready condition wins, as in the printer's condition map
        status = ["Ready" if readiness[-1].get("status") == "True" else "NotReady"]
    if _dig(node, "spec", "unschedulable"):
        status.append("SchedulingDisabled")
    return ",".join(status)


def _node_roles(node: Obj) -> str:
    roles: set[str] = set()
    for key, value in (_dig(node, "metadata", "labels") or {}).items():
        if key.startswith(_NODE_ROLE_PREFIX) and key[len(_NODE_ROLE_PREFIX) :]:
            roles.add(key[len(_NODE_ROLE_PREFIX) :])
        elif key == _NODE_ROLE_LABEL and value:
            roles.add(value)
    return ",".join(sorted(roles)) or NONE


def _node_address(node: Obj, kind: str) -> str:
    addresses = _dig(node, "status", "addresses") or []
    return next((a.get("address", "") for a in addresses if a.get("type") == kind), NONE)


def _node_cells(node: Obj, now: datetime) -> list[Cell]:
    info = _dig(node, "status", "nodeInfo") or {}
    return [
        _name(node),
        _node_status(node),
        _node_roles(node),
        _age(node, now),
        info.get("kubeletVersion") or "",
        _node_address(node, "InternalIP"),
        _node_address(node, "ExternalIP"),
        info.get("osImage") or UNKNOWN,
        info.get("kernelVersion") or UNKNOWN,
        info.get("containerRuntimeVersion") or UNKNOWN,
    ]


# --- events -----------------------------------------------------------------------------


def _event_cells(event: Obj, now: datetime) -> list[Cell]:
    first_seen = _since(event.get("firstTimestamp") or event.get("eventTime"), now)
    last_seen = _since(event["lastTimestamp"], now) if event.get("lastTimestamp") else first_seen
    count = _int(event.get("count"))
    if event.get("series") is not None:
        last_seen = _since(_dig(event, "series", "lastObservedTime"), now)
        count = _int(_dig(event, "series", "count"))
    elif count == 0:
        count = 1  # singleton events from the events.k8s.io API carry no count
    involved = event.get("involvedObject") or {}
    target = (involved.get("kind") or "").lower()
    if involved.get("name"):
        target = f"{target}/{involved['name']}"
    source = event.get("source") or {}
    component = source.get("component") or event.get("reportingComponent") or ""
    instance = source.get("host") or event.get("reportingInstance") or ""
    return [
        last_seen,
        event.get("type") or "",
        event.get("reason") or "",
        target,
        involved.get("fieldPath") or "",
        f"{component}, {instance}" if instance else component,
        (event.get("message") or "").strip(),
        first_seen,
        count,
        _name(event),
    ]


# --- services and endpoints -------------------------------------------------------------


def _load_balancer_ips(service: Obj) -> list[str]:
    ingress = _dig(service, "status", "loadBalancer", "ingress") or []
    return sorted({i.get("ip") or i.get("hostname") for i in ingress} - {None, ""})


def _external_ip(service: Obj) -> str:
    spec = service.get("spec") or {}
    kind, external = spec.get("type") or "ClusterIP", spec.get("externalIPs") or []
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or NONE
    if kind == "LoadBalancer":
        return ",".join(_load_balancer_ips(service) + external) or "<pending>"
    if kind == "ExternalName":
        return spec.get("externalName") or ""
    return UNKNOWN


def _service_ports(ports: Iterable[Obj]) -> str:
    pieces = []
    for port in ports:
        number, node_port = str(_int(port.get("port"))), _int(port.get("nodePort"))
        if node_port > 0:
            number = f"{number}:{node_port}"
        pieces.append(f"{number}/{port.get('protocol') or 'TCP'}")
    return ",".join(pieces) or NONE


def _service_cells(service: Obj, now: datetime) -> list[Cell]:
    spec = service.get("spec") or {}
    cluster_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return [
        _name(service),
        spec.get("type") or "ClusterIP",
        cluster_ips[0] if cluster_ips else NONE,
        _external_ip(service),
        _service_ports(spec.get("ports") or []),
        _age(service, now),
        _format_labels(spec.get("selector")),
    ]


def _host_port(ip: str, port: int) -> str:
    """`net.JoinHostPort`: IPv6 addresses in brackets."""
    try:
        is_v6 = ipaddress.ip_address(ip).version == 6
    except ValueError:
        is_v6 = ":" in ip
    return f"[{ip}]:{port}" if is_v6 else f"{ip}:{port}"


def format_endpoints(endpoints: Obj) -> str:
    """The ENDPOINTS cell: the first three `ip:port`s, then `+ N more...`."""
    subsets = endpoints.get("subsets") or []
    if not subsets:
        return NONE
    shown: list[str] = []
    total = 0
    for subset in subsets:
        addresses = [a.get("ip", "") for a in subset.get("addresses") or []]
        ports = subset.get("ports") or []
        # a headless service may have addresses without ports
        for port in ports or [None]:
            total += len(addresses)
            for ip in addresses[: max(0, _MORE_ENDPOINTS_AFTER - len(shown))]:
                shown.append(ip if port is None else _host_port(ip, _int(port.get("port"))))
    text = ",".join(shown)
    if total > _MORE_ENDPOINTS_AFTER:
        return f"{text} + {total - _MORE_ENDPOINTS_AFTER} more..."
    return text


def _endpoints_cells(endpoints: Obj, now: datetime) -> list[Cell]:
    return [_name(endpoints), format_endpoints(endpoints), _age(endpoints, now)]


def _namespace_cells(namespace: Obj, now: datetime) -> list[Cell]:
    return [_name(namespace), _dig(namespace, "status", "phase") or "", _age(namespace, now)]


def _default_cells(obj: Obj, now: datetime) -> list[Cell]:
    """The generic convertor's cells: name and the creation time in RFC 3339."""
    created = parse_time(_dig(obj, "metadata", "creationTimestamp"))
    stamp = created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if created else _ZERO_TIME
    return [_name(obj), stamp]


# --- tables -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Printer:
    """How one kind prints: its columns, its cells, and any row conditions."""

    columns: tuple[Column, ...]
    cells: Callable[[Obj, datetime], list[Cell]]
    conditions: Callable[[Obj], list[Obj]] = lambda obj: []


PRINTERS: dict[ResourceType, Printer] = {
    PODS: Printer(POD_COLUMNS, _pod_cells, _pod_conditions),
    DEPLOYMENTS: Printer(DEPLOYMENT_COLUMNS, _deployment_cells),
    REPLICASETS: Printer(REPLICASET_COLUMNS, _replicaset_cells),
    NODES: Printer(NODE_COLUMNS, _node_cells),
    EVENTS: Printer(EVENT_COLUMNS, _event_cells),
    SERVICES: Printer(SERVICE_COLUMNS, _service_cells),
    ENDPOINTS: Printer(ENDPOINTS_COLUMNS, _endpoints_cells),
    NAMESPACES: Printer(NAMESPACE_COLUMNS, _namespace_cells),
}
DEFAULT_PRINTER = Printer(DEFAULT_COLUMNS, _default_cells)


def _row_object(resource: ResourceType, obj: Obj, include_object: str) -> Obj | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return {"kind": resource.kind, "apiVersion": resource.api_version, **copy.deepcopy(obj)}
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": TABLE_API_VERSION,
        "metadata": copy.deepcopy(obj.get("metadata") or {}),
    }


def to_table(
    resource: ResourceType,
    objects: list[Obj],
    *,
    include_object: str = "Metadata",
    now: datetime | None = None,
    resource_version: str | None = None,
) -> Obj:
    """`objects` as the `meta.k8s.io/v1` Table the API server answers `kubectl get` with.

    `include_object` is the `includeObject` query parameter: `Metadata` (the default, and
    what an empty value means) puts a `PartialObjectMetadata` in each row, `Object` the
    whole object, `None` a null. Anything else raises ValueError (the server's 400).
    """
    include_object = include_object or "Metadata"
    if include_object not in INCLUDE_OBJECT_VALUES:
        raise ValueError(f'unrecognized includeObject value: "{include_object}"')
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    printer = PRINTERS.get(resource, DEFAULT_PRINTER)
    rows = []
    for obj in objects:
        row: Obj = {"cells": printer.cells(obj, now)}
        if conditions := printer.conditions(obj):
            row["conditions"] = conditions
        row["object"] = _row_object(resource, obj, include_object)
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": TABLE_API_VERSION,
        "metadata": {"resourceVersion": resource_version} if resource_version else {},
        "columnDefinitions": [column.definition() for column in printer.columns],
        "rows": rows,
    }
