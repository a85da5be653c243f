"""The sandbox kubelet, pod logs and endpoints controller against Debian's real registry."""

from __future__ import annotations

import asyncio
import calendar
import re
import socket
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest

from sandbox.clock import WorldClock
from sandbox.endpoints import EndpointsController
from sandbox.kubelet import Kubelet
from sandbox.podlogs import LogsUnavailableError
from sandbox.registry import RegistryProcess, build_image
from sandbox.resources import ENDPOINTS, EVENTS, NAMESPACES, PODS, SERVICES
from sandbox.seed import REGISTRY_HOST
from sandbox.store import ApiError, Change, ObjectStore

Obj = dict[str, Any]
NS = "holm"
SPEED = 200.0
RFC3339_NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ")


@pytest.fixture
def registry(shared_registry: RegistryProcess) -> RegistryProcess:
    """The session's seeded registry (every seeded service's tags, broken ones included)."""
    return shared_registry


@pytest.fixture
def store() -> ObjectStore:
    store = ObjectStore()
    store.create(NAMESPACES, {"metadata": {"name": NS}})
    return store


class HealthCalls(list[tuple[str, bool]]):
    def __call__(self, service: str, ok: bool) -> None:
        self.append((service, ok))


@pytest.fixture
def health() -> HealthCalls:
    return HealthCalls()


@pytest.fixture
async def kubelet(
    store: ObjectStore, registry: RegistryProcess, health: HealthCalls
) -> AsyncIterator[Kubelet]:
    kubelet = Kubelet(store, WorldClock(SPEED), registry.url, on_service_health=health)
    kubelet.start()
    yield kubelet
    await kubelet.stop()
    current = asyncio.current_task()
    assert [t for t in asyncio.all_tasks() if t is not current and not t.done()] == []


@pytest.fixture
def waiting_reasons(store: ObjectStore) -> dict[str, list[str]]:
    """Every waiting reason each pod's first container showed, in order."""
    seen: dict[str, list[str]] = defaultdict(list)

    def listen(change: Change) -> None:
        if change.resource != PODS or change.type == "DELETED":
            return
        for status in (change.new.get("status") or {}).get("containerStatuses", [])[:1]:
            reason = status["state"].get("waiting", {}).get("reason")
            history = seen[change.new["metadata"]["name"]]
            if reason and (not history or history[-1] != reason):
                history.append(reason)

    store.add_listener(listen)
    return seen


@pytest.fixture
def event_order(store: ObjectStore) -> list[tuple[str, str]]:
    """(pod, reason) of every event as it is first recorded."""
    seen: list[tuple[str, str]] = []

    def listen(change: Change) -> None:
        if change.resource == EVENTS and change.type == "ADDED":
            seen.append((change.new["involvedObject"]["name"], change.new["reason"]))

    store.add_listener(listen)
    return seen


def pod_body(
    name: str,
    image: str,
    *,
    app: str | None = None,
    readiness: Obj | None = None,
    liveness: Obj | None = None,
    memory: str = "256Mi",
    grace: int = 30,
    labels: dict[str, str] | None = None,
) -> Obj:
    container: Obj = {
        "name": app or name,
        "image": image,
        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
        "resources": {"limits": {"cpu": "250m", "memory": memory}},
    }
    if readiness is not None:
        container["readinessProbe"] = readiness
    if liveness is not None:
        container["livenessProbe"] = liveness
    return {
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {"app": app or name, "pod-template-hash": "5d8f7c9b6f", **(labels or {})},
        },
        "spec": {
            "nodeName": "rpi3",
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": grace,
            "containers": [container],
        },
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
        },
    }


def http_probe(path: str, delay: int = 5, period: int = 10) -> Obj:
    return {
        "httpGet": {"path": path, "port": "http", "scheme": "HTTP"},
        "initialDelaySeconds": delay,
        "periodSeconds": period,
        "timeoutSeconds": 1,
        "failureThreshold": 3,
        "successThreshold": 1,
    }


async def wait_for(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` real seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def pod(store: ObjectStore, name: str) -> Obj | None:
    return store.find(PODS, NS, name)


def container_status(store: ObjectStore, name: str) -> Obj:
    found = pod(store, name)
    statuses = ((found or {}).get("status") or {}).get("containerStatuses") or [{}]
    return statuses[0]


def waiting(store: ObjectStore, name: str) -> Obj:
    return dict(container_status(store, name).get("state", {}).get("waiting") or {})


def events(store: ObjectStore, name: str) -> list[Obj]:
    return [e for e in store.list(EVENTS, NS) if e["involvedObject"]["name"] == name]


def reasons(store: ObjectStore, name: str) -> list[str]:
    return [e["reason"] for e in events(store, name)]


def stamp_ns(line: str) -> int:
    """The nanoseconds since the epoch of a `--timestamps` log line."""
    stamp = line.split(" ", 1)[0]
    seconds = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
    return seconds * 1_000_000_000 + int(stamp[20:29])


def condition(found: Obj, kind: str) -> str | None:
    for item in found["status"].get("conditions", []):
        if item["type"] == kind:
            return str(item["status"])
    return None


def is_ready(store: ObjectStore, name: str) -> bool:
    found = pod(store, name)
    return bool(found and found.get("status") and condition(found, "Ready") == "True")


async def test_good_image_runs_and_becomes_ready(
    store: ObjectStore, kubelet: Kubelet, event_order: list[tuple[str, str]]
) -> None:
    store.create(
        PODS,
        pod_body(
            "nova-a", f"{REGISTRY_HOST}/nova:v1.1", app="nova", readiness=http_probe("/ready")
        ),
    )
    await wait_for(lambda: is_ready(store, "nova-a"), "nova-a ready")

    status = pod(store, "nova-a")["status"]  # type: ignore[index]
    assert status["phase"] == "Running"
    assert status["podIP"].startswith("10.42.")
    assert status["hostIP"] and status["startTime"] and status["qosClass"] == "Guaranteed"
    kinds = [c["type"] for c in status["conditions"]]
    assert {"Initialized", "Ready", "ContainersReady", "PodScheduled"} <= set(kinds)
    assert all(c["status"] == "True" for c in status["conditions"])
    container = status["containerStatuses"][0]
    assert container["ready"] is True and container["started"] is True
    assert container["restartCount"] == 0
    assert "startedAt" in container["state"]["running"]
    digest = build_image("nova", "v1.1").digest
    assert container["imageID"] == f"{REGISTRY_HOST}/nova@{digest}"
    assert container["containerID"].startswith("containerd://")

    found = [reason for name, reason in event_order if name == "nova-a"]
    assert found[:4] == ["Pulling", "Pulled", "Created", "Started"]
    pulled = next(e for e in events(store, "nova-a") if e["reason"] == "Pulled")
    assert pulled["message"].startswith(
        f'Successfully pulled image "{REGISTRY_HOST}/nova:v1.1" in '
    )
    assert pulled["source"] == {"component": "kubelet", "host": "rpi3"}
    assert pulled["involvedObject"]["fieldPath"] == "spec.containers{nova}"


async def test_missing_tag_backs_off_pulling(
    store: ObjectStore, kubelet: Kubelet, waiting_reasons: dict[str, list[str]]
) -> None:
    image = f"{REGISTRY_HOST}/nova:v9.9.9"
    store.create(PODS, pod_body("nova-missing", image, app="nova"))
    await wait_for(
        lambda: "ImagePullBackOff" in waiting_reasons["nova-missing"], "ImagePullBackOff"
    )
    history = waiting_reasons["nova-missing"]
    assert history.index("ErrImagePull") < history.index("ImagePullBackOff")
    assert pod(store, "nova-missing")["status"]["phase"] == "Pending"  # type: ignore[index]

    failed = [e["message"] for e in events(store, "nova-missing") if e["reason"] == "Failed"]
    assert any(
        m.startswith(f'Failed to pull image "{image}": ') and m.endswith(f"{image}: not found")
        for m in failed
    )
    assert "Error: ErrImagePull" in failed and "Error: ImagePullBackOff" in failed
    backoff = [e for e in events(store, "nova-missing") if e["reason"] == "BackOff"]
    assert backoff[0]["message"] == f'Back-off pulling image "{image}"'

    # after the back-off, the kubelet pulls again
    await wait_for(
        lambda: waiting_reasons["nova-missing"].count("ErrImagePull") >= 2, "second pull attempt"
    )
    pulling = next(e for e in events(store, "nova-missing") if e["reason"] == "Pulling")
    assert pulling["count"] >= 2


async def test_unreachable_registry_is_err_image_pull(store: ObjectStore) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    kubelet = Kubelet(store, WorldClock(SPEED), f"http://127.0.0.1:{port}")
    kubelet.start()
    try:
        store.create(PODS, pod_body("nova-offline", f"{REGISTRY_HOST}/nova:v1.1", app="nova"))
        await wait_for(
            lambda: waiting(store, "nova-offline").get("reason") == "ErrImagePull", "ErrImagePull"
        )
        message = waiting(store, "nova-offline")["message"]
        assert message.endswith("dial tcp 10.110.67.87:5000: connect: connection refused")
    finally:
        await kubelet.stop()


async def test_other_registries_are_unreachable_from_the_nodes(
    store: ObjectStore, kubelet: Kubelet
) -> None:
    store.create(PODS, pod_body("curl", "curlimages/curl"))
    await wait_for(lambda: waiting(store, "curl").get("reason") == "ErrImagePull", "ErrImagePull")
    assert waiting(store, "curl")["message"].endswith(
        'failed to do request: Head "https://registry-1.docker.io/v2/curlimages/curl/manifests/'
        'latest": dial tcp: lookup registry-1.docker.io: no such host'
    )


async def test_crash_without_restarts_fails_the_pod(store: ObjectStore, kubelet: Kubelet) -> None:
    body = pod_body("nova-once", f"{REGISTRY_HOST}/nova:v2-broken", app="nova")
    body["spec"]["restartPolicy"] = "Never"
    store.create(PODS, body)
    await wait_for(
        lambda: (pod(store, "nova-once") or {}).get("status", {}).get("phase") == "Failed", "Failed"
    )
    status = container_status(store, "nova-once")
    assert status["state"]["terminated"]["exitCode"] == 1
    assert status["restartCount"] == 0 and status["lastState"] == {}
    assert kubelet.logs.read(NS, "nova-once").rstrip().endswith("'FEATURE_FLAGS_URL'")


async def test_a_stalled_loop_never_logs_probes_after_the_crash(
    store: ObjectStore, kubelet: Kubelet
) -> None:
    """Probes overdue when a blocked event loop wakes must not answer from a dead process."""
    names = [f"nova-stall-{index}" for index in range(4)]
    for name in names:
        body = pod_body(
            name,
            f"{REGISTRY_HOST}/nova:v2-broken",
            app="nova",
            readiness=http_probe("/ready", delay=0, period=1),
            liveness=http_probe("/health", delay=0, period=1),
        )
        body["spec"]["restartPolicy"] = "Never"
        store.create(PODS, body)

    def started(name: str) -> set[str]:
        return {"running", "terminated"} & set(container_status(store, name).get("state", {}))

    for name in names:
        state = await wait_for(partial(started, name), f"{name} started")
        if "running" in state:
            time.sleep(2 * 3.0 / SPEED)  # the loop stalls past the crash and several probes
    await wait_for(
        lambda: all(pod(store, name)["status"]["phase"] == "Failed" for name in names),  # type: ignore[index]
        "every pod Failed",
    )
    for name in names:
        last = kubelet.logs.read(NS, name).rstrip("\n").splitlines()[-1]
        assert last.endswith("missing required setting 'FEATURE_FLAGS_URL'"), (name, last)


async def test_crashing_image_loops_with_back_off(
    store: ObjectStore, kubelet: Kubelet, waiting_reasons: dict[str, list[str]]
) -> None:
    store.create(
        PODS,
        pod_body(
            "nova-crash",
            f"{REGISTRY_HOST}/nova:v2-broken",
            app="nova",
            readiness=http_probe("/ready"),
        ),
    )

    def looping() -> Obj | None:
        status = container_status(store, "nova-crash")
        waiting = status.get("state", {}).get("waiting", {})
        if waiting.get("reason") == "CrashLoopBackOff" and status["restartCount"] >= 2:
            return status
        return None

    status = await wait_for(looping, "CrashLoopBackOff with 2 restarts")
    terminated = status["lastState"]["terminated"]
    assert terminated["exitCode"] == 1 and terminated["reason"] == "Error"
    assert terminated["containerID"].startswith("containerd://")
    assert terminated["startedAt"] <= terminated["finishedAt"]
    assert status["ready"] is False and status["started"] is False
    message = status["state"]["waiting"]["message"]
    assert re.match(
        r"back-off (10|20)s restarting failed container=nova pod=nova-crash_holm\(", message
    )
    assert pod(store, "nova-crash")["status"]["phase"] == "Running"  # type: ignore[index]

    backoff = [e for e in events(store, "nova-crash") if e["reason"] == "BackOff"]
    assert backoff and backoff[0]["type"] == "Warning"
    assert backoff[0]["message"].startswith(
        "Back-off restarting failed container nova in pod nova-crash_holm("
    )
    assert "already present on machine" in " ".join(
        e["message"] for e in events(store, "nova-crash")
    )

    previous = kubelet.logs.read(NS, "nova-crash", "nova", previous=True)
    assert previous.startswith("INFO  starting nova v2-broken")
    assert (
        previous.rstrip("\n")
        .splitlines()[-1]
        .endswith("ConfigError: missing required setting 'FEATURE_FLAGS_URL'")
    )
    # while backing off, the current logs are the last run's (as the kubelet serves them)
    assert kubelet.logs.read(NS, "nova-crash", "nova") == previous


async def test_leaking_image_is_oom_killed(store: ObjectStore, kubelet: Kubelet) -> None:
    store.create(
        PODS,
        pod_body(
            "pulse-leak",
            f"{REGISTRY_HOST}/pulse:v1.3-leak",
            app="pulse",
            readiness=http_probe("/ready", delay=2),
        ),
    )
    await wait_for(lambda: is_ready(store, "pulse-leak"), "ready before the leak kills it")

    def killed() -> tuple[bool, Obj] | None:
        status = container_status(store, "pulse-leak")
        for previous, state in ((False, status.get("state")), (True, status.get("lastState"))):
            if (state or {}).get("terminated", {}).get("reason") == "OOMKilled":
                return previous, state["terminated"]  # type: ignore[index]
        return None

    previous, terminated = await wait_for(killed, "OOMKilled")
    assert terminated["exitCode"] == 137
    logs = kubelet.logs.read(NS, "pulse-leak", "pulse", previous=previous)
    usage = [int(m) for m in re.findall(r"memory: rss (\d+)Mi of 256Mi limit", logs)]
    assert len(usage) >= 5 and usage == sorted(usage) and usage[-1] >= 230


async def test_unhealthy_image_fails_probes_and_is_restarted(
    store: ObjectStore, kubelet: Kubelet, health: HealthCalls
) -> None:
    store.create(
        PODS,
        pod_body(
            "cicd-bad",
            f"{REGISTRY_HOST}/cicd-controller:v0.5.0",
            app="cicd-controller",
            readiness=http_probe("/ready", delay=2, period=5),
            liveness=http_probe("/health", delay=2, period=5),
            grace=3,
        ),
    )
    await wait_for(lambda: ("cicd-controller", False) in health, "health hook says failing")
    await wait_for(lambda: "Killing" in reasons(store, "cicd-bad"), "liveness kill")
    messages = {e["message"] for e in events(store, "cicd-bad") if e["reason"] == "Unhealthy"}
    assert "Readiness probe failed: HTTP probe failed with statuscode: 503" in messages
    assert "Liveness probe failed: HTTP probe failed with statuscode: 503" in messages
    assert "Container cicd-controller failed liveness probe, will be restarted" in {
        e["message"] for e in events(store, "cicd-bad")
    }
    assert not is_ready(store, "cicd-bad")

    status = await wait_for(
        lambda: (
            container_status(store, "cicd-bad")
            if container_status(store, "cicd-bad").get("restartCount", 0) >= 1
            else None
        ),
        "restart after the liveness kill",
    )
    assert status["lastState"]["terminated"]["exitCode"] == 137
    assert status["lastState"]["terminated"]["reason"] == "Error"
    assert "GET /health 503" in kubelet.logs.read(NS, "cicd-bad", "cicd-controller", previous=True)

    store.delete(PODS, NS, "cicd-bad")
    await wait_for(lambda: health[-1] == ("cicd-controller", True), "health hook says ok again")


async def test_logs_tail_since_timestamps_and_follow(store: ObjectStore, kubelet: Kubelet) -> None:
    store.create(
        PODS,
        pod_body(
            "nova-logs",
            f"{REGISTRY_HOST}/nova:v1.1",
            app="nova",
            readiness=http_probe("/ready", delay=1, period=2),
        ),
    )
    await wait_for(
        lambda: (
            len(kubelet.logs.read(NS, "nova-logs", "nova").splitlines()) >= 12
            if is_ready(store, "nova-logs")
            else None
        ),
        "a dozen log lines",
    )
    full = kubelet.logs.read(NS, "nova-logs")  # a single container needs no name
    lines = full.splitlines()
    assert lines[0] == "INFO  starting nova v1.1 (python 3.11.9, linux/arm64)"
    assert any(re.search(r"GET /ready 200 \dms ua=kube-probe/1.32", line) for line in lines)
    assert any(re.match(r"INFO  (GET|POST) /\S+ \d{3} \d+ms$", line) for line in lines)

    # no await between these reads, so they all see the same lines
    assert kubelet.logs.read(NS, "nova-logs", "nova", tail_lines=3).splitlines() == lines[-3:]
    assert kubelet.logs.read(NS, "nova-logs", "nova", tail_lines=0) == ""
    stamped = kubelet.logs.read(NS, "nova-logs", "nova", timestamps=True).splitlines()
    assert all(RFC3339_NANO.match(line) for line in stamped)
    assert [line.split(" ", 1)[1] for line in stamped] == lines
    assert kubelet.logs.read(NS, "nova-logs", "nova", since_seconds=3600) == full
    assert kubelet.logs.read(NS, "nova-logs", "nova", limit_bytes=20) == full[:20]

    parsed = [(stamp_ns(line), line.split(" ", 1)[1]) for line in stamped]
    sixth = datetime.fromisoformat(stamped[5].split(" ", 1)[0][:26] + "+00:00")
    cutoff = parsed[5][0] // 1000 * 1000
    since = kubelet.logs.read(NS, "nova-logs", "nova", since_time=sixth).splitlines()
    assert since == [text for stamp, text in parsed if stamp >= cutoff]
    assert len(since) <= len(lines) - 5
    later = datetime.now(UTC) + timedelta(hours=1)
    assert kubelet.logs.read(NS, "nova-logs", "nova", since_time=later) == ""

    with pytest.raises(LogsUnavailableError) as missing:
        kubelet.logs.read(NS, "nova-logs", "nova", previous=True)
    assert missing.value.code == 400
    assert (
        missing.value.message == 'previous terminated container "nova" in pod "nova-logs" not found'
    )
    with pytest.raises(
        LogsUnavailableError, match="container envoy is not valid for pod nova-logs"
    ):
        kubelet.logs.read(NS, "nova-logs", "envoy")
    with pytest.raises(ApiError) as gone:
        kubelet.logs.read(NS, "no-such-pod", "nova")
    assert gone.value.code == 404

    received: list[str] = []
    before = kubelet.logs.read(NS, "nova-logs", "nova", timestamps=True)
    stream = kubelet.logs.follow(NS, "nova-logs", "nova", tail_lines=2, timestamps=True)

    async def follow() -> None:
        async for line in stream:
            received.append(line)

    follower = asyncio.create_task(follow())
    await wait_for(lambda: len(received) >= 5, "followed lines")
    after = kubelet.logs.read(NS, "nova-logs", "nova", timestamps=True)
    expected = "".join(before.splitlines(keepends=True)[-2:]) + after[len(before) :]
    assert expected.startswith("".join(received))  # the tail, then new lines: no gap, no repeat
    store.delete(PODS, NS, "nova-logs")
    await asyncio.wait_for(follower, timeout=5)


async def test_logs_of_a_container_still_pulling(store: ObjectStore, kubelet: Kubelet) -> None:
    store.create(PODS, pod_body("nova-wait", f"{REGISTRY_HOST}/nova:nope", app="nova"))
    await wait_for(
        lambda: container_status(store, "nova-wait").get("state", {}).get("waiting"), "waiting"
    )
    with pytest.raises(
        LogsUnavailableError, match=r'container "nova" in pod "nova-wait" is waiting to start'
    ):
        kubelet.logs.read(NS, "nova-wait", "nova")


async def test_graceful_deletion_stops_then_removes_the_pod(
    store: ObjectStore, kubelet: Kubelet
) -> None:
    store.create(PODS, pod_body("nova-bye", f"{REGISTRY_HOST}/nova:v1.1", app="nova"))
    await wait_for(lambda: is_ready(store, "nova-bye"), "ready")
    terminating = store.get(PODS, NS, "nova-bye")
    terminating["metadata"]["deletionTimestamp"] = "2026-11-26T12:00:00Z"
    terminating["metadata"]["deletionGracePeriodSeconds"] = 30
    store.update(PODS, terminating)
    await wait_for(lambda: pod(store, "nova-bye") is None, "pod removed after shutdown")
    assert "Stopping container nova" in {e["message"] for e in events(store, "nova-bye")}


async def test_endpoints_follow_readiness(store: ObjectStore, kubelet: Kubelet) -> None:
    controller = EndpointsController(store)
    controller.start()
    try:
        store.create(
            SERVICES,
            {
                "metadata": {"name": "web", "namespace": NS, "labels": {"tier": "web"}},
                "spec": {
                    "selector": {"tier": "web"},
                    "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
                },
            },
        )
        await wait_for(lambda: store.find(ENDPOINTS, NS, "web"), "empty endpoints")
        assert "subsets" not in store.get(ENDPOINTS, NS, "web")
        web = {"tier": "web"}
        probe = http_probe("/ready", delay=1, period=2)
        bodies = [
            pod_body(
                "nova-ep", f"{REGISTRY_HOST}/nova:v1.1", app="nova", readiness=probe, labels=web
            ),
            pod_body(
                "slow-ep",
                f"{REGISTRY_HOST}/metrics-dashboard:v2.4",
                app="metrics-dashboard",
                readiness=probe,
                labels=web,
            ),
            pod_body(
                "failing-ep",
                f"{REGISTRY_HOST}/registry-ui:v1.2",
                app="registry-ui",
                readiness=probe,
                labels=web,
            ),
            pod_body(
                "hang-ep",
                f"{REGISTRY_HOST}/test-dashboard:v0.2",
                app="test-dashboard",
                readiness=probe,
                labels=web,
            ),
        ]
        for body in bodies:
            store.create(PODS, body)

        def split() -> tuple[set[str], set[str]] | None:
            endpoints = store.find(ENDPOINTS, NS, "web") or {}
            subsets = endpoints.get("subsets") or []
            ready = {a["targetRef"]["name"] for s in subsets for a in s.get("addresses", [])}
            unready = {
                a["targetRef"]["name"] for s in subsets for a in s.get("notReadyAddresses", [])
            }
            if ready == {"nova-ep", "slow-ep"} and unready == {"failing-ep", "hang-ep"}:
                return ready, unready
            return None

        await wait_for(split, "two ready and two unready addresses")
        endpoints = store.get(ENDPOINTS, NS, "web")
        assert endpoints["subsets"][0]["ports"] == [
            {"port": 8080, "protocol": "TCP", "name": "http"}
        ]
        address = endpoints["subsets"][0]["addresses"][0]
        assert address["nodeName"] == "rpi3" and address["ip"].startswith("10.42.")
        assert endpoints["metadata"]["labels"] == {"tier": "web"}

        def unhealthy(name: str) -> set[str]:
            return {e["message"] for e in events(store, name) if e["reason"] == "Unhealthy"}

        await wait_for(lambda: unhealthy("failing-ep") and unhealthy("hang-ep"), "probe failures")
        assert unhealthy("failing-ep") == {
            "Readiness probe failed: HTTP probe failed with statuscode: 503"
        }
        ip = store.get(PODS, NS, "hang-ep")["status"]["podIP"]
        assert unhealthy("hang-ep") == {
            f'Readiness probe failed: Get "http://{ip}:8080/ready": context deadline exceeded '
            "(Client.Timeout exceeded while awaiting headers)"
        }
        assert not unhealthy("slow-ep") and not unhealthy("nova-ep")

        store.delete(PODS, NS, "nova-ep")
        await wait_for(
            lambda: (
                {
                    a["targetRef"]["name"]
                    for s in store.get(ENDPOINTS, NS, "web").get("subsets", [])
                    for a in s.get("addresses", [])
                }
                == {"slow-ep"}
            ),
            "deleted pod leaves the endpoints",
        )
        store.delete(SERVICES, NS, "web")
        await wait_for(lambda: store.find(ENDPOINTS, NS, "web") is None, "endpoints removed")
    finally:
        await controller.stop()
