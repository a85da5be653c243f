"""Tables for `kubectl get`: columns and cells as the API server's printers make them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

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
from sandbox.tables import format_endpoints, human_duration, pod_status, to_table

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
Obj = dict[str, Any]


def ago(**delta: float) -> str:
    """An RFC 3339 timestamp `delta` before NOW."""
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, **extra: Any) -> Obj:
    return {"name": name, "namespace": "default", "creationTimestamp": ago(minutes=5), **extra}


def row(resource: ResourceType, obj: Obj) -> list[Any]:
    return to_table(resource, [obj], now=NOW)["rows"][0]["cells"]


def column_names(resource: ResourceType) -> list[tuple[str, int]]:
    table = to_table(resource, [], now=NOW)
    return [(c["name"], c["priority"]) for c in table["columnDefinitions"]]


# --- HumanDuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-3, "<invalid>"),
        (-2, "<invalid>"),
        (-1.5, "0s"),
        (0, "0s"),
        (5, "5s"),
        (119, "119s"),
        (120, "2m"),
        (182, "3m2s"),
        (599, "9m59s"),
        (600, "10m"),
        (179 * 60 + 59, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 25 * 60, "3h25m"),
        (8 * 3600, "8h"),
        (47 * 3600 + 59 * 60, "47h"),
        (48 * 3600, "2d"),
        (2 * 86400 + 3 * 3600, "2d3h"),
        (8 * 86400, "8d"),
        (729 * 86400, "729d"),
        (730 * 86400, "2y"),
        (800 * 86400, "2y70d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration(seconds: float, expected: str) -> None:
    assert human_duration(timedelta(seconds=seconds)) == expected


def test_age_is_unknown_without_a_creation_timestamp() -> None:
    namespace = {"metadata": {"name": "bare"}, "status": {"phase": "Active"}}
    assert row(NAMESPACES, namespace) == ["bare", "Active", "<unknown>"]


# --- pods -------------------------------------------------------------------------------


def container(
    name: str = "app",
    *,
    ready: bool = False,
    restarts: int = 0,
    last: Obj | None = None,
    started: bool | None = None,
    **state: Any,
) -> Obj:
    """A container status; `state` is its `running`/`waiting`/`terminated` state."""
    status: Obj = {"name": name, "ready": ready, "restartCount": restarts, "state": state}
    if last is not None:
        status["lastState"] = {"terminated": last}
    if started is not None:
        status["started"] = started
    return status


def pod(
    *statuses: Obj,
    phase: str = "Running",
    containers: int | None = None,
    conditions: list[Obj] | None = None,
    **metadata: Any,
) -> Obj:
    count = len(statuses) if containers is None else containers
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": meta("nova-7d9f-x2k4q", **metadata),
        "spec": {
            "nodeName": "worker-1",
            "containers": [{"name": f"c{i}", "image": "nova:1"} for i in range(count)],
        },
        "status": {
            "phase": phase,
            "podIP": "10.42.0.5",
            "conditions": conditions or [],
            "containerStatuses": list(statuses),
        },
    }


RUNNING = {"running": {"startedAt": ago(minutes=4)}}
READY = [{"type": "Ready", "status": "True"}]


def status_of(obj: Obj) -> tuple[str, str, str]:
    return pod_status(obj, NOW)


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (pod(phase="Pending", containers=1), ("0/1", "Pending", "0")),
        (
            pod(container(waiting={"reason": "ContainerCreating"}), phase="Pending"),
            ("0/1", "ContainerCreating", "0"),
        ),
        (
            pod(container(waiting={"reason": "ErrImagePull", "message": "not found"})),
            ("0/1", "ErrImagePull", "0"),
        ),
        (
            pod(container(waiting={"reason": "ImagePullBackOff"}), phase="Pending"),
            ("0/1", "ImagePullBackOff", "0"),
        ),
        (pod(container(ready=True, **RUNNING), conditions=READY), ("1/1", "Running", "0")),
        (pod(container(ready=False, **RUNNING)), ("0/1", "Running", "0")),
        (
            pod(container(ready=True, **RUNNING), container("sidecar", ready=False, **RUNNING)),
            ("1/2", "Running", "0"),
        ),
        (
            pod(container(terminated={"exitCode": 0, "reason": "Completed"}), phase="Succeeded"),
            ("0/1", "Completed", "0"),
        ),
        (
            pod(container(terminated={"exitCode": 137, "signal": 9}), phase="Failed"),
            ("0/1", "Signal:9", "0"),
        ),
        (
            pod(container(terminated={"exitCode": 3}), phase="Failed"),
            ("0/1", "ExitCode:3", "0"),
        ),
    ],
    ids=[
        "pending",
        "container-creating",
        "err-image-pull",
        "image-pull-backoff",
        "running",
        "running-not-ready",
        "two-containers-one-ready",
        "completed",
        "signal",
        "exit-code",
    ],
)
def test_pod_status(obj: Obj, expected: tuple[str, str, str]) -> None:
    assert status_of(obj) == expected


def test_crash_loop_back_off_shows_when_the_last_restart_was() -> None:
    crashing = container(
        restarts=3,
        waiting={"reason": "CrashLoopBackOff", "message": "back-off 40s restarting"},
        last={"exitCode": 1, "reason": "Error", "finishedAt": ago(seconds=12)},
    )
    assert status_of(pod(crashing)) == ("0/1", "CrashLoopBackOff", "3 (12s ago)")


def test_restarts_without_a_finish_time_are_a_bare_number() -> None:
    restarted = container(ready=True, restarts=2, last={"exitCode": 1}, **RUNNING)
    assert status_of(pod(restarted, conditions=READY))[2] == "2"


def test_oom_killed() -> None:
    killed = container(
        restarts=1,
        terminated={"exitCode": 137, "reason": "OOMKilled"},
        last={"exitCode": 137, "reason": "OOMKilled", "finishedAt": ago(minutes=3)},
    )
    assert status_of(pod(killed)) == ("0/1", "OOMKilled", "1 (3m ago)")


def test_completed_container_next_to_a_running_one() -> None:
    done = container("job", terminated={"exitCode": 0, "reason": "Completed"})
    serving = container("web", ready=True, **RUNNING)
    assert status_of(pod(done, serving, conditions=READY))[1] == "Running"
    assert status_of(pod(done, serving))[1] == "NotReady"


def test_terminating_pods() -> None:
    deleting = pod(container(ready=True, **RUNNING), deletionTimestamp=ago(seconds=3))
    assert status_of(deleting)[1] == "Terminating"
    finished = pod(
        container(terminated={"exitCode": 0, "reason": "Completed"}),
        phase="Succeeded",
        deletionTimestamp=ago(seconds=3),
    )
    assert status_of(finished)[1] == "Completed"
    lost = pod(container(**RUNNING), deletionTimestamp=ago(seconds=3))
    lost["status"]["reason"] = "NodeLost"
    assert status_of(lost)[1] == "Unknown"


def test_status_reason_overrides_the_phase() -> None:
    evicted = pod(phase="Failed", containers=1)
    evicted["status"]["reason"] = "Evicted"
    assert status_of(evicted)[1] == "Evicted"


def test_scheduling_gated() -> None:
    gated = pod(
        phase="Pending",
        containers=1,
        conditions=[{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}],
    )
    assert status_of(gated)[1] == "SchedulingGated"


def with_init(obj: Obj, *statuses: Obj, sidecar: bool = False) -> Obj:
    obj["spec"]["initContainers"] = [
        {"name": s["name"], "image": "init:1", **({"restartPolicy": "Always"} if sidecar else {})}
        for s in statuses
    ]
    obj["status"]["initContainerStatuses"] = list(statuses)
    return obj


def test_init_container_states() -> None:
    waiting = container(waiting={"reason": "PodInitializing"})
    first = container("migrate", waiting={"reason": "PodInitializing"})
    running = container("migrate", **RUNNING)
    crashed = container("migrate", restarts=2, waiting={"reason": "CrashLoopBackOff"})
    failed = container("migrate", terminated={"exitCode": 2})
    done = container("migrate", terminated={"exitCode": 0, "reason": "Completed"})
    assert status_of(with_init(pod(waiting, phase="Pending"), first))[1] == "Init:0/1"
    assert status_of(with_init(pod(waiting, phase="Pending"), running))[1] == "Init:0/1"
    crashing = with_init(pod(waiting, phase="Pending"), crashed)
    assert status_of(crashing) == ("0/1", "Init:CrashLoopBackOff", "2")
    assert status_of(with_init(pod(waiting, phase="Pending"), failed))[1] == "Init:ExitCode:2"
    both = with_init(pod(waiting, phase="Pending"), done, container("seed", **RUNNING))
    assert status_of(both)[1] == "Init:1/2"


def test_started_sidecar_counts_as_a_container() -> None:
    sidecar = container("proxy", ready=True, started=True, **RUNNING)
    obj = with_init(pod(container(ready=True, **RUNNING), conditions=READY), sidecar, sidecar=True)
    assert status_of(obj) == ("2/2", "Running", "0")


def test_pod_row_has_the_wide_cells_and_completion_condition() -> None:
    obj = pod(container(ready=True, **RUNNING), conditions=READY)
    assert row(PODS, obj) == [
        "nova-7d9f-x2k4q",
        "1/1",
        "Running",
        "0",
        "5m",
        "10.42.0.5",
        "worker-1",
        "<none>",
        "<none>",
    ]
    obj["spec"]["readinessGates"] = [{"conditionType": "example.com/lb"}, {"conditionType": "x"}]
    obj["status"]["conditions"].append({"type": "example.com/lb", "status": "True"})
    assert row(PODS, obj)[-1] == "1/2"

    assert "conditions" not in to_table(PODS, [obj], now=NOW)["rows"][0]
    obj["status"]["phase"] = "Succeeded"
    assert to_table(PODS, [obj], now=NOW)["rows"][0]["conditions"] == [
        {
            "type": "Completed",
            "status": "True",
            "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        }
    ]


def test_unscheduled_pod_shows_none_for_ip_and_node() -> None:
    obj = pod(phase="Pending", containers=1)
    del obj["spec"]["nodeName"], obj["status"]["podIP"]
    assert row(PODS, obj)[5:7] == ["<none>", "<none>"]


def test_pod_columns() -> None:
    assert column_names(PODS) == [
        ("Name", 0),
        ("Ready", 0),
        ("Status", 0),
        ("Restarts", 0),
        ("Age", 0),
        ("IP", 1),
        ("Node", 1),
        ("Nominated Node", 1),
        ("Readiness Gates", 1),
    ]
    restarts = to_table(PODS, [])["columnDefinitions"][3]
    assert restarts["type"] == "string"
    name = to_table(PODS, [])["columnDefinitions"][0]
    assert (name["type"], name["format"]) == ("string", "name")


# --- workloads --------------------------------------------------------------------------

TEMPLATE = {
    "metadata": {"labels": {"app": "nova"}},
    "spec": {
        "containers": [
            {"name": "nova", "image": "registry.local/nova:1.4.2"},
            {"name": "proxy", "image": "envoy:1.30"},
        ]
    },
}
SELECTOR = {
    "matchLabels": {"app": "nova", "tier": "api"},
    "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "canary"]}],
}


def test_deployment_row() -> None:
    deployment = {
        "metadata": meta("nova"),
        "spec": {"replicas": 3, "selector": SELECTOR, "template": TEMPLATE},
        "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    }
    assert row(DEPLOYMENTS, deployment) == [
        "nova",
        "2/3",
        3,
        2,
        "5m",
        "nova,proxy",
        "registry.local/nova:1.4.2,envoy:1.30",
        "app=nova,env in (canary,prod),tier=api",
    ]
    assert column_names(DEPLOYMENTS) == [
        ("Name", 0),
        ("Ready", 0),
        ("Up-to-date", 0),
        ("Available", 0),
        ("Age", 0),
        ("Containers", 1),
        ("Images", 1),
        ("Selector", 1),
    ]


def test_new_deployment_without_status() -> None:
    deployment = {"metadata": meta("nova"), "spec": {"replicas": 2, "template": TEMPLATE}}
    assert row(DEPLOYMENTS, deployment)[:4] == ["nova", "0/2", 0, 0]
    assert row(DEPLOYMENTS, deployment)[-1] == ""


def test_replicaset_row() -> None:
    replicaset = {
        "metadata": meta("nova-7d9f"),
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "nova"}}, "template": TEMPLATE},
        "status": {"replicas": 3, "readyReplicas": 1},
    }
    assert row(REPLICASETS, replicaset) == [
        "nova-7d9f",
        3,
        3,
        1,
        "5m",
        "nova,proxy",
        "registry.local/nova:1.4.2,envoy:1.30",
        "app=nova",
    ]
    replicaset["spec"]["selector"] = {"matchExpressions": [{"key": "a", "operator": "Bogus"}]}
    assert row(REPLICASETS, replicaset)[-1] == "<error>"
    replicaset["spec"]["selector"] = {}
    assert row(REPLICASETS, replicaset)[-1] == "<none>"
    assert [name for name, _ in column_names(REPLICASETS)] == [
        "Name",
        "Desired",
        "Current",
        "Ready",
        "Age",
        "Containers",
        "Images",
        "Selector",
    ]


def test_selector_operators() -> None:
    deployment = {
        "metadata": meta("nova"),
        "spec": {
            "selector": {
                "matchExpressions": [
                    {"key": "zone", "operator": "NotIn", "values": ["b", "a"]},
                    {"key": "canary", "operator": "DoesNotExist"},
                    {"key": "app", "operator": "Exists"},
                ]
            },
            "template": TEMPLATE,
        },
    }
    assert row(DEPLOYMENTS, deployment)[-1] == "app,!canary,zone notin (a,b)"


# --- nodes ------------------------------------------------------------------------------


def node(name: str, ready: str | None = "True", **spec: Any) -> Obj:
    conditions = [{"type": "MemoryPressure", "status": "False"}]
    if ready is not None:
        conditions.append({"type": "Ready", "status": ready})
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": ago(days=2, hours=3),
            "labels": {"kubernetes.io/hostname": name},
        },
        "spec": spec,
        "status": {
            "conditions": conditions,
            "addresses": [
                {"type": "Hostname", "address": name},
                {"type": "InternalIP", "address": "192.168.1.10"},
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.32.4+k3s1",
                "osImage": "Ubuntu 24.04.1 LTS",
                "kernelVersion": "6.8.0-45-generic",
                "containerRuntimeVersion": "containerd://1.7.23-k3s2",
            },
        },
    }


def test_node_rows() -> None:
    control = node("holm-cp")
    control["metadata"]["labels"].update(
        {"node-role.kubernetes.io/control-plane": "true", "node-role.kubernetes.io/master": ""}
    )
    assert row(NODES, control) == [
        "holm-cp",
        "Ready",
        "control-plane,master",
        "2d3h",
        "v1.32.4+k3s1",
        "192.168.1.10",
        "<none>",
        "Ubuntu 24.04.1 LTS",
        "6.8.0-45-generic",
        "containerd://1.7.23-k3s2",
    ]
    assert row(NODES, node("w1", ready="False"))[1:3] == ["NotReady", "<none>"]
    assert row(NODES, node("w2", ready="Unknown"))[1] == "NotReady"
    assert row(NODES, node("w3", ready=None))[1] == "Unknown"
    assert row(NODES, node("w4", unschedulable=True))[1] == "Ready,SchedulingDisabled"
    legacy = node("w5")
    legacy["metadata"]["labels"]["kubernetes.io/role"] = "worker"
    assert row(NODES, legacy)[2] == "worker"
    bare = {"metadata": {"name": "w6"}}
    assert row(NODES, bare)[4:] == ["", "<none>", "<none>", "<unknown>", "<unknown>", "<unknown>"]
    assert [name for name, priority in column_names(NODES) if priority] == [
        "Internal-IP",
        "External-IP",
        "OS-Image",
        "Kernel-Version",
        "Container-Runtime",
    ]


# --- events -----------------------------------------------------------------------------


def event(**fields: Any) -> Obj:
    return {
        "metadata": meta("nova-7d9f-x2k4q.17f2a"),
        "involvedObject": {
            "kind": "Pod",
            "name": "nova-7d9f-x2k4q",
            "fieldPath": "spec.containers{nova}",
        },
        "reason": "BackOff",
        "message": "Back-off restarting failed container nova\n",
        "source": {"component": "kubelet", "host": "worker-1"},
        "firstTimestamp": ago(minutes=4),
        "lastTimestamp": ago(seconds=12),
        "count": 5,
        "type": "Warning",
        **fields,
    }


def test_event_row_and_columns() -> None:
    assert row(EVENTS, event()) == [
        "12s",
        "Warning",
        "BackOff",
        "pod/nova-7d9f-x2k4q",
        "spec.containers{nova}",
        "kubelet, worker-1",
        "Back-off restarting failed container nova",
        "4m",
        5,
        "nova-7d9f-x2k4q.17f2a",
    ]
    assert column_names(EVENTS) == [
        ("Last Seen", 0),
        ("Type", 0),
        ("Reason", 0),
        ("Object", 0),
        ("Subobject", 1),
        ("Source", 1),
        ("Message", 0),
        ("First Seen", 1),
        ("Count", 1),
        ("Name", 1),
    ]


def test_events_api_style_event() -> None:
    new_style = event(
        firstTimestamp=None,
        lastTimestamp=None,
        count=None,
        source={},
        eventTime="2025-03-01T11:59:30.123456Z",
        reportingComponent="deployment-controller",
        reportingInstance="",
        involvedObject={"kind": "Deployment", "name": "nova"},
    )
    cells = row(EVENTS, new_style)
    assert cells[0] == cells[7] == "29s"
    assert cells[3:6] == ["deployment/nova", "", "deployment-controller"]
    assert cells[8] == 1
    series = event(series={"count": 9, "lastObservedTime": ago(seconds=2)})
    assert row(EVENTS, series)[0] == "2s"
    assert row(EVENTS, series)[8] == 9
    assert row(EVENTS, event(involvedObject={"kind": "Node"}))[3] == "node"


# --- services and endpoints -------------------------------------------------------------


def service(kind: str, **spec: Any) -> Obj:
    return {
        "metadata": meta("nova"),
        "spec": {
            "type": kind,
            "clusterIP": "10.43.12.7",
            "clusterIPs": ["10.43.12.7"],
            "selector": {"app": "nova", "tier": "api"},
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "targetPort": 8080}],
            **spec,
        },
    }


def test_service_rows() -> None:
    assert row(SERVICES, service("ClusterIP")) == [
        "nova",
        "ClusterIP",
        "10.43.12.7",
        "<none>",
        "8080/TCP",
        "5m",
        "app=nova,tier=api",
    ]
    node_port = service(
        "NodePort",
        ports=[
            {"port": 8080, "nodePort": 30004, "protocol": "TCP"},
            {"port": 53, "nodePort": 30053, "protocol": "UDP"},
        ],
    )
    assert row(SERVICES, node_port)[1:5] == [
        "NodePort",
        "10.43.12.7",
        "<none>",
        "8080:30004/TCP,53:30053/UDP",
    ]
    balancer = service("LoadBalancer", externalIPs=["203.0.113.9"])
    assert row(SERVICES, balancer)[3] == "203.0.113.9"
    balancer["status"] = {"loadBalancer": {"ingress": [{"ip": "198.51.100.4"}]}}
    assert row(SERVICES, balancer)[3] == "198.51.100.4,203.0.113.9"
    assert row(SERVICES, service("LoadBalancer"))[3] == "<pending>"
    external = service("ExternalName", externalName="db.example.com", clusterIPs=[], ports=[])
    del external["spec"]["clusterIP"], external["spec"]["selector"]
    assert row(SERVICES, external)[2:5] == ["<none>", "db.example.com", "<none>"]
    assert row(SERVICES, external)[-1] == "<none>"
    headless = service("ClusterIP", clusterIP="None", clusterIPs=["None"])
    assert row(SERVICES, headless)[2] == "None"


def address(ip: str) -> Obj:
    return {"ip": ip, "targetRef": {"kind": "Pod", "name": f"pod-{ip}"}}


def endpoints(*subsets: Obj) -> Obj:
    return {"metadata": meta("nova"), "subsets": list(subsets)}


def test_endpoints_formatting() -> None:
    two = {"addresses": [address("10.42.0.5"), address("10.42.1.7")], "ports": [{"port": 8080}]}
    assert format_endpoints(endpoints(two)) == "10.42.0.5:8080,10.42.1.7:8080"
    assert format_endpoints(endpoints()) == "<none>"
    assert format_endpoints(endpoints({"notReadyAddresses": [address("10.42.0.9")]})) == ""
    assert row(ENDPOINTS, endpoints(two)) == ["nova", "10.42.0.5:8080,10.42.1.7:8080", "5m"]
    assert column_names(ENDPOINTS) == [("Name", 0), ("Endpoints", 0), ("Age", 0)]


def test_endpoints_truncation() -> None:
    five = {
        "addresses": [address(f"10.42.0.{i}") for i in range(1, 6)],
        "ports": [{"name": "http", "port": 8080}, {"name": "metrics", "port": 9090}],
    }
    assert format_endpoints(endpoints(five)) == (
        "10.42.0.1:8080,10.42.0.2:8080,10.42.0.3:8080 + 7 more..."
    )
    headless = {"addresses": [address("10.42.0.1"), address("10.42.0.2")]}
    more = {"addresses": [address("10.42.1.1"), address("10.42.1.2")], "ports": [{"port": 80}]}
    assert format_endpoints(endpoints(headless, more)) == (
        "10.42.0.1,10.42.0.2,10.42.1.1:80 + 1 more..."
    )
    ipv6 = {"addresses": [address("fd00::5")], "ports": [{"port": 8080}]}
    assert format_endpoints(endpoints(ipv6)) == "[fd00::5]:8080"


# --- namespaces and unknown kinds ------------------------------------------------------


def test_namespace_row() -> None:
    namespace = {"metadata": {"name": "holm", "creationTimestamp": ago(days=40)}}
    namespace["status"] = {"phase": "Terminating"}
    assert row(NAMESPACES, namespace) == ["holm", "Terminating", "40d"]
    assert column_names(NAMESPACES) == [("Name", 0), ("Status", 0), ("Age", 0)]


def test_unknown_kinds_get_the_generic_columns() -> None:
    widgets = ResourceType("example.com", "v1", "widgets", "Widget", True)
    obj = {"metadata": {"name": "w", "creationTimestamp": "2025-02-28T10:00:00+02:00"}}
    table = to_table(widgets, [obj, {"metadata": {"name": "bare"}}], now=NOW)
    assert [(c["name"], c["type"]) for c in table["columnDefinitions"]] == [
        ("Name", "string"),
        ("Created At", "date"),
    ]
    assert [r["cells"] for r in table["rows"]] == [
        ["w", "2025-02-28T08:00:00Z"],
        ["bare", "0001-01-01T00:00:00Z"],
    ]


# --- the Table itself -------------------------------------------------------------------


def test_table_envelope_and_partial_object_metadata() -> None:
    obj = pod(container(ready=True, **RUNNING), conditions=READY, resourceVersion="41")
    table = to_table(PODS, [obj], now=NOW, resource_version="42")
    assert table["kind"] == "Table"
    assert table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "42"}
    assert set(table["columnDefinitions"][0]) == {
        "name",
        "type",
        "format",
        "description",
        "priority",
    }
    partial = table["rows"][0]["object"]
    assert partial == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"],
    }
    partial["metadata"]["name"] = "changed"
    assert obj["metadata"]["name"] == "nova-7d9f-x2k4q"
    assert to_table(PODS, [], now=NOW) == {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": table["columnDefinitions"],
        "rows": [],
    }


def test_include_object_modes() -> None:
    obj = pod(container(ready=True, **RUNNING))
    bare = {key: value for key, value in obj.items() if key not in ("kind", "apiVersion")}
    full = to_table(PODS, [bare], include_object="Object", now=NOW)["rows"][0]["object"]
    assert full == obj
    assert list(full)[:2] == ["kind", "apiVersion"]
    assert to_table(PODS, [obj], include_object="None", now=NOW)["rows"][0]["object"] is None
    default = to_table(PODS, [obj], include_object="", now=NOW)["rows"][0]["object"]
    assert default["kind"] == "PartialObjectMetadata"
    with pytest.raises(ValueError, match="unrecognized includeObject"):
        to_table(PODS, [obj], include_object="Everything")


def test_now_defaults_to_the_current_time() -> None:
    created = (datetime.now(UTC) - timedelta(days=10)).isoformat()  # "10d" for a whole day on
    old = {"metadata": {"name": "old", "creationTimestamp": created}}
    assert to_table(NAMESPACES, [old])["rows"][0]["cells"][2] == "10d"
