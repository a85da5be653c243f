"""The Deployment and ReplicaSet controllers and the scheduler, driven through the store.

A small stand-in plays the kubelet: it marks scheduled pods Running and Ready unless they run
an image it is told is broken. The world clock runs fast; tests only wait, with a bound, for
conditions.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from sandbox import seed
from sandbox.clock import WorldClock
from sandbox.cluster_seed import SEED_NOTE, registry_images, seed_cluster
from sandbox.controller import (
    CHANGE_CAUSE,
    HASH_LABEL,
    REVISION,
    REVISION_HISTORY,
    SAFE_ALPHABET,
    SKIP_COPY_ANNOTATIONS,
    DeploymentController,
    controller_of,
    is_pod_ready,
    pod_template_hash,
    resolve_fenceposts,
    scaled_value,
)
from sandbox.kubelet import Kubelet
from sandbox.registry import RegistryProcess, seed_images
from sandbox.resources import DEPLOYMENTS, EVENTS, NODES, PODS, REPLICASETS
from sandbox.store import Change, ObjectStore, now_rfc3339

Obj = dict[str, Any]
NS = seed.NAMESPACE
SPEED = 1000.0


class FakeKubelet:
    """Runs scheduled pods: Running and Ready after `start_seconds` of world time, except
    pods running an image listed as broken, which stay Pending."""

    def __init__(self, store: ObjectStore, clock: WorldClock) -> None:
        self.store, self.clock = store, clock
        self.broken: set[str] = set()
        self.start_seconds = 0.0
        self.active = True
        store.add_listener(self._on_change)

    def _on_change(self, change: Change) -> None:
        pod = change.new
        if (
            self.active
            and change.resource is PODS
            and change.type != "DELETED"
            and pod["spec"].get("nodeName")
            and (pod.get("status") or {}).get("phase") == "Pending"
        ):
            key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
            delay = self.clock.real(self.start_seconds)
            asyncio.get_running_loop().call_later(delay, self._run, key)

    def _run(self, key: tuple[str, str]) -> None:
        pod = self.store.find(PODS, *key)
        if not self.active or pod is None or pod["status"].get("phase") != "Pending":
            return
        images = [c["image"] for c in pod["spec"]["containers"]]
        if any(image in self.broken for image in images):
            return
        now = now_rfc3339()
        pod["status"] = {
            **pod["status"],
            "phase": "Running",
            "startTime": now,
            "conditions": [
                *pod["status"].get("conditions", []),
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
            ],
            "containerStatuses": [
                {"name": c["name"], "image": c["image"], "ready": True, "restartCount": 0}
                for c in pod["spec"]["containers"]
            ],
        }
        self.store.update(PODS, pod, status_only=True)


class Cluster:
    """The seeded store with the controllers and the stand-in kubelet running."""

    def __init__(
        self, speed: float = SPEED, services: tuple[seed.ServiceSeed, ...] = seed.SERVICES
    ) -> None:
        self.store = ObjectStore()
        self.clock = WorldClock(speed)
        seed_cluster(self.store, services)
        self.kubelet = FakeKubelet(self.store, self.clock)
        self.controller = DeploymentController(self.store, self.clock)

    def deployment(self, name: str) -> Obj:
        return self.store.get(DEPLOYMENTS, NS, name)

    def replica_sets(self, name: str) -> list[Obj]:
        return [
            rs
            for rs in self.store.list(REPLICASETS, NS)
            if (ref := controller_of(rs)) and ref["name"] == name
        ]

    def revisions(self, name: str) -> dict[int, Obj]:
        return {int(rs["metadata"]["annotations"][REVISION]): rs for rs in self.replica_sets(name)}

    def pods(self, name: str, *, terminating: bool = False) -> list[Obj]:
        pods = [p for p in self.store.list(PODS, NS) if p["metadata"]["labels"].get("app") == name]
        return [p for p in pods if terminating or not p["metadata"].get("deletionTimestamp")]

    def change(self, name: str, mutate: Callable[[Obj], None]) -> Obj:
        deployment = self.deployment(name)
        mutate(deployment)
        return self.store.update(DEPLOYMENTS, deployment)

    def set_image(self, name: str, tag: str, *, cause: bool = True) -> Obj:
        image = seed.service(name).image(tag) if seed.service(name) else tag

        def mutate(deployment: Obj) -> None:
            deployment["spec"]["template"]["spec"]["containers"][0]["image"] = image
            if cause:
                deployment["metadata"]["annotations"][CHANGE_CAUSE] = f"set image {image}"

        return self.change(name, mutate)

    def undo_to(self, name: str, number: int) -> None:
        """What `kubectl rollout undo --to-revision=N` sends."""
        rs = self.revisions(name)[number]
        template = copy.deepcopy(rs["spec"]["template"])
        del template["metadata"]["labels"][HASH_LABEL]

        def mutate(deployment: Obj) -> None:
            kept = {
                k: v
                for k, v in deployment["metadata"]["annotations"].items()
                if k in SKIP_COPY_ANNOTATIONS
            }
            copied = {
                k: v
                for k, v in rs["metadata"]["annotations"].items()
                if k not in SKIP_COPY_ANNOTATIONS
            }
            deployment["metadata"]["annotations"] = {**kept, **copied}
            deployment["spec"]["template"] = template

        self.change(name, mutate)

    def events(self, reason: str) -> list[str]:
        return [e["message"] for e in self.store.list(EVENTS, NS) if e["reason"] == reason]


def rollout_status(deployment: Obj) -> str:
    """kubectl's rollout status verdict: done, waiting or exceeded."""
    status = deployment.get("status") or {}
    if deployment["metadata"]["generation"] > status.get("observedGeneration", 0):
        return "waiting"
    progressing = next(
        (c for c in status.get("conditions", []) if c["type"] == "Progressing"), None
    )
    if progressing and progressing["reason"] == "ProgressDeadlineExceeded":
        return "exceeded"
    updated = status.get("updatedReplicas", 0)
    if (
        updated < deployment["spec"]["replicas"]
        or status.get("replicas", 0) > updated
        or status.get("availableReplicas", 0) < updated
    ):
        return "waiting"
    return "done"


async def wait_for(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll until `check()` is truthy; fail after `timeout` real seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.005)


def condition(deployment: Obj, kind: str) -> Obj:
    return next(c for c in deployment["status"]["conditions"] if c["type"] == kind)


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    running = Cluster()
    running.controller.start()
    try:
        yield running
    finally:
        running.kubelet.active = False
        await running.controller.stop()


async def settled(cluster: Cluster, name: str, timeout: float = 5.0) -> Obj:
    """The Deployment once rolled out with no pod left over."""
    return await wait_for(
        lambda: (
            rollout_status(d := cluster.deployment(name)) == "done"
            and len(cluster.pods(name, terminating=True)) == d["spec"]["replicas"]
            and d
        ),
        timeout,
    )


# -- pure helpers ---------------------------------------------------------------------------


def test_pod_template_hash_is_stable_and_ignores_the_hash_label() -> None:
    template = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "x"}]}}
    labelled = copy.deepcopy(template)
    labelled["metadata"]["labels"][HASH_LABEL] = "abc"
    value = pod_template_hash(template)
    assert value == pod_template_hash(labelled)
    assert set(value) <= set(SAFE_ALPHABET)
    assert value != pod_template_hash(template, collision_count=1)


@pytest.mark.parametrize(
    ("surge", "unavailable", "replicas", "expected"),
    [
        ("25%", "25%", 2, (1, 0)),
        ("25%", "25%", 3, (1, 0)),
        ("25%", "25%", 4, (1, 1)),
        (0, 0, 3, (0, 1)),
        (2, "50%", 5, (2, 2)),
    ],
)
def test_fenceposts_round_surge_up_and_unavailable_down(
    surge: int | str, unavailable: int | str, replicas: int, expected: tuple[int, int]
) -> None:
    deployment = {
        "spec": {
            "replicas": replicas,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
            },
        }
    }
    assert resolve_fenceposts(deployment) == expected


def test_scaled_value_refuses_a_bare_string() -> None:
    with pytest.raises(ValueError):
        scaled_value("3", 10, True)


# -- seeding --------------------------------------------------------------------------------


async def test_seeded_deployments_have_history_and_pods(cluster: Cluster) -> None:
    for service in seed.SERVICES:
        deployment = await settled(cluster, service.name)
        revisions = cluster.revisions(service.name)
        assert sorted(revisions) == list(range(1, len(service.history) + 1))
        current = revisions[len(service.history)]
        assert deployment["metadata"]["annotations"][REVISION] == str(len(service.history))
        assert current["spec"]["replicas"] == service.replicas
        assert current["spec"]["template"]["spec"]["containers"][0]["image"] == service.image(
            service.history[-1]
        )
        for number, rs in revisions.items():
            assert rs["metadata"]["name"].startswith(f"{service.name}-")
            assert rs["metadata"]["annotations"][CHANGE_CAUSE].endswith(SEED_NOTE)
            if number < len(service.history):
                assert rs["spec"]["replicas"] == 0
        pods = cluster.pods(service.name)
        assert len(pods) == service.replicas
        assert all(p["metadata"]["name"].startswith(current["metadata"]["name"]) for p in pods)
        assert all(
            p["metadata"]["labels"][HASH_LABEL] == current["metadata"]["labels"][HASH_LABEL]
            for p in pods
        )
        assert condition(deployment, "Available")["reason"] == "MinimumReplicasAvailable"


async def test_seed_has_ready_arm64_nodes(cluster: Cluster) -> None:
    nodes = cluster.store.list(NODES)
    assert [n["metadata"]["name"] for n in nodes] == sorted(seed.NODE_NAMES)
    for node in nodes:
        assert node["status"]["nodeInfo"]["architecture"] == "arm64"
        assert node["status"]["nodeInfo"]["kubeletVersion"].startswith("v1.32.")
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True"


async def test_pods_are_spread_and_kept_off_the_storage_node(cluster: Cluster) -> None:
    await settled(cluster, "gateway")
    nodes = [p["spec"]["nodeName"] for p in cluster.pods("gateway")]
    assert len(set(nodes)) == 3
    everywhere = {p["spec"]["nodeName"] for p in cluster.store.list(PODS, NS)}
    assert seed.STORAGE_NODE not in everywhere
    assert cluster.events("Scheduled")


# -- rolling updates ------------------------------------------------------------------------


async def test_image_change_rolls_within_surge_and_unavailability(cluster: Cluster) -> None:
    name, replicas = "gateway", 3
    await settled(cluster, name)
    violations: list[str] = []

    def check(change: Change) -> None:
        if change.resource not in (PODS, REPLICASETS):
            return
        total = sum(rs["spec"]["replicas"] for rs in cluster.replica_sets(name))
        ready = [p for p in cluster.pods(name) if is_pod_ready(p)]
        if total > replicas + 1:
            violations.append(f"{total} replicas wanted")
        if len(ready) < replicas:
            violations.append(f"only {len(ready)} ready pods")

    cluster.store.add_listener(check)
    updated = cluster.set_image(name, "v2.2.0")
    assert updated["metadata"]["generation"] == 2
    deployment = await settled(cluster, name)
    cluster.store._listeners.remove(check)

    assert violations == []
    revisions = cluster.revisions(name)
    assert sorted(revisions) == [1, 2, 3]
    new = revisions[3]
    assert new["metadata"]["annotations"][CHANGE_CAUSE].endswith(":v2.2.0")
    assert new["spec"]["replicas"] == 3 and revisions[2]["spec"]["replicas"] == 0
    assert deployment["metadata"]["annotations"][REVISION] == "3"
    status = deployment["status"]
    assert status["observedGeneration"] == 2
    assert status["replicas"] == status["updatedReplicas"] == status["availableReplicas"] == 3
    assert status["readyReplicas"] == 3 and "unavailableReplicas" not in status
    assert condition(deployment, "Available")["status"] == "True"
    progressing = condition(deployment, "Progressing")
    assert progressing["reason"] == "NewReplicaSetAvailable"
    assert (
        progressing["message"]
        == f'ReplicaSet "{new["metadata"]["name"]}" has successfully progressed.'
    )
    scaling = cluster.events("ScalingReplicaSet")
    assert f"Scaled up replica set {new['metadata']['name']} from 0 to 1" in scaling
    assert any(
        m.startswith(f"Scaled down replica set {revisions[2]['metadata']['name']}") for m in scaling
    )
    assert any(m.startswith("Created pod: ") for m in cluster.events("SuccessfulCreate"))
    assert any(m.startswith("Deleted pod: ") for m in cluster.events("SuccessfulDelete"))
    assert len(cluster.pods(name)) == 3
    assert all(
        p["metadata"]["labels"][HASH_LABEL] == new["metadata"]["labels"][HASH_LABEL]
        for p in cluster.pods(name)
    )


async def test_recreate_removes_old_pods_before_starting_new_ones(cluster: Cluster) -> None:
    name = "holmos-shell"
    await settled(cluster, name)

    def to_recreate(deployment: Obj) -> None:
        deployment["spec"]["strategy"] = {"type": "Recreate"}

    cluster.change(name, to_recreate)
    await settled(cluster, name)
    overlap: list[int] = []
    old_hash = cluster.pods(name)[0]["metadata"]["labels"][HASH_LABEL]

    def check(change: Change) -> None:
        if change.resource is PODS and change.type == "ADDED":
            overlap.append(
                sum(
                    1
                    for p in cluster.pods(name, terminating=True)
                    if p["metadata"]["labels"][HASH_LABEL] == old_hash
                )
            )

    cluster.store.add_listener(check)
    cluster.set_image(name, "v1.4.0")
    await settled(cluster, name)
    cluster.store._listeners.remove(check)
    assert overlap and set(overlap) == {0}


async def test_undo_reuses_the_old_replica_set_with_a_new_revision(cluster: Cluster) -> None:
    name = "nova"
    await settled(cluster, name)
    cluster.set_image(name, "v2")
    await settled(cluster, name)
    original = cluster.revisions(name)[2]

    cluster.undo_to(name, 2)
    deployment = await settled(cluster, name)
    revisions = await wait_for(lambda: (r := cluster.revisions(name)) and 4 in r and r)

    assert sorted(revisions) == [1, 3, 4]
    reused = revisions[4]
    assert reused["metadata"]["uid"] == original["metadata"]["uid"]
    assert reused["metadata"]["annotations"][REVISION_HISTORY] == "2"
    assert reused["spec"]["replicas"] == 2 and revisions[3]["spec"]["replicas"] == 0
    assert deployment["metadata"]["annotations"][REVISION] == "4"
    assert len(cluster.replica_sets(name)) == 3

    cluster.undo_to(name, 3)
    await settled(cluster, name)
    revisions = await wait_for(lambda: (r := cluster.revisions(name)) and 5 in r and r)
    assert sorted(revisions) == [1, 4, 5]
    assert revisions[5]["metadata"]["annotations"][REVISION_HISTORY] == "3"


async def test_revision_history_limit_prunes_oldest_first(cluster: Cluster) -> None:
    name = "pulse"
    await settled(cluster, name)

    def limit_one(deployment: Obj) -> None:
        deployment["spec"]["revisionHistoryLimit"] = 1

    cluster.change(name, limit_one)
    cluster.set_image(name, "v1.3-leak")
    await settled(cluster, name)
    revisions = await wait_for(lambda: len(r := cluster.revisions(name)) == 2 and r)
    assert sorted(revisions) == [3, 4]


async def test_pods_that_never_get_ready_exceed_the_progress_deadline(cluster: Cluster) -> None:
    name = "nova"
    await settled(cluster, name)
    image = seed.service(name).image("v2-broken")
    cluster.kubelet.broken.add(image)
    cluster.set_image(name, "v2-broken")

    deployment = await wait_for(
        lambda: rollout_status(d := cluster.deployment(name)) == "exceeded" and d
    )
    progressing = condition(deployment, "Progressing")
    new = cluster.revisions(name)[3]
    assert progressing["status"] == "False"
    assert (
        progressing["message"]
        == f'ReplicaSet "{new["metadata"]["name"]}" has timed out progressing.'
    )
    # Two replicas, 25%: one surge pod may start, none of the old may go.
    assert new["spec"]["replicas"] == 1
    assert cluster.revisions(name)[2]["spec"]["replicas"] == 2
    assert condition(deployment, "Available")["status"] == "True"
    assert deployment["status"]["unavailableReplicas"] == 1


async def test_progress_deadline_counts_from_the_last_progress(cluster: Cluster) -> None:
    name = "gateway"
    await settled(cluster, name)
    cluster.kubelet.start_seconds = 300  # each pod: 300 s; the whole rollout: about 900 s

    def short_deadline(deployment: Obj) -> None:
        deployment["spec"]["progressDeadlineSeconds"] = 450

    cluster.change(name, short_deadline)
    cluster.set_image(name, "v2.2.0")
    deployment = await settled(cluster, name)
    assert condition(deployment, "Progressing")["reason"] == "NewReplicaSetAvailable"
    assert not any(
        c.get("reason") == "ProgressDeadlineExceeded"
        for e in cluster.store.list(DEPLOYMENTS, NS)
        for c in e["status"]["conditions"]
    )


# -- scaling, pods and lifecycle ------------------------------------------------------------


async def test_scale_up_and_down(cluster: Cluster) -> None:
    name = "claude-pod"
    await settled(cluster, name)

    def scale(replicas: int) -> Callable[[Obj], None]:
        def mutate(deployment: Obj) -> None:
            deployment["spec"]["replicas"] = replicas

        return mutate

    cluster.change(name, scale(5))
    deployment = await settled(cluster, name)
    assert deployment["status"]["availableReplicas"] == 5
    current = cluster.revisions(name)[2]
    assert current["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "5"
    assert f"Scaled up replica set {current['metadata']['name']} from 1 to 5" in cluster.events(
        "ScalingReplicaSet"
    )

    cluster.change(name, scale(1))
    deployment = await settled(cluster, name)
    assert len(cluster.pods(name, terminating=True)) == 1
    assert cluster.revisions(name)[2]["status"]["replicas"] == 1


async def test_scaling_mid_rollout_is_proportional(cluster: Cluster) -> None:
    name = "nova"
    await settled(cluster, name)
    cluster.kubelet.broken.add(seed.service(name).image("v3"))
    cluster.set_image(name, "v3")
    await wait_for(lambda: 3 in cluster.revisions(name))

    def scale(deployment: Obj) -> None:
        deployment["spec"]["replicas"] = 20

    cluster.change(name, scale)

    def wanted_total() -> dict[int, Obj] | None:
        revisions = cluster.revisions(name)
        return revisions if sum(rs["spec"]["replicas"] for rs in revisions.values()) == 25 else None

    revisions = await wait_for(wanted_total)
    assert revisions[2]["spec"]["replicas"] > revisions[3]["spec"]["replicas"] > 1


async def test_paused_deployment_is_not_rolled_out_until_resumed(cluster: Cluster) -> None:
    name = "scribe"
    await settled(cluster, name)

    def pause(deployment: Obj) -> None:
        deployment["spec"]["paused"] = True

    cluster.change(name, pause)
    cluster.set_image(name, "v1.0")
    deployment = await wait_for(
        lambda: (d := cluster.deployment(name))["status"].get("observedGeneration") == 3 and d
    )
    assert condition(deployment, "Progressing")["reason"] == "DeploymentPaused"

    def scale(deployment: Obj) -> None:
        deployment["spec"]["replicas"] = 2

    # a later sync of the paused Deployment (it scales) still starts no rollout
    cluster.change(name, scale)
    await wait_for(
        lambda: (
            cluster.deployment(name)["status"].get("observedGeneration") == 4
            and cluster.revisions(name)[2]["spec"]["replicas"] == 2
        )
    )
    assert sorted(cluster.revisions(name)) == [1, 2]

    def resume(deployment: Obj) -> None:
        deployment["spec"]["paused"] = False

    cluster.change(name, resume)
    deployment = await settled(cluster, name)
    assert sorted(cluster.revisions(name)) == [1, 2, 3]
    assert condition(deployment, "Progressing")["reason"] == "NewReplicaSetAvailable"


async def test_a_deleted_pod_is_replaced(cluster: Cluster) -> None:
    name = "holmos-shell"
    await settled(cluster, name)
    victim = cluster.pods(name)[0]["metadata"]["name"]
    cluster.store.delete(PODS, NS, victim)
    pods = await wait_for(
        lambda: len(p := cluster.pods(name)) == 2 and all(is_pod_ready(x) for x in p) and p
    )
    assert victim not in {p["metadata"]["name"] for p in pods}
    owner = controller_of(pods[0])
    assert owner is not None and owner["kind"] == "ReplicaSet"


async def test_generation_is_observed_and_only_spec_changes_bump_it(cluster: Cluster) -> None:
    name = "registry-ui"
    deployment = await settled(cluster, name)
    assert deployment["metadata"]["generation"] == deployment["status"]["observedGeneration"] == 1

    def annotate(deployment: Obj) -> None:
        deployment["metadata"]["annotations"]["team"] = "platform"

    assert cluster.change(name, annotate)["metadata"]["generation"] == 1
    cluster.set_image(name, "v1.1", cause=False)
    deployment = await settled(cluster, name)
    assert deployment["metadata"]["generation"] == deployment["status"]["observedGeneration"] == 2
    rs = cluster.revisions(name)[3]
    assert rs["metadata"]["annotations"]["team"] == "platform"
    assert rs["status"]["observedGeneration"] == rs["metadata"]["generation"]


async def test_deleting_a_deployment_collects_its_replica_sets_and_pods(cluster: Cluster) -> None:
    name = "test-dashboard"
    await settled(cluster, name)
    cluster.store.delete(DEPLOYMENTS, NS, name)
    await wait_for(lambda: not cluster.replica_sets(name))
    await wait_for(lambda: not cluster.pods(name, terminating=True))


async def test_a_new_deployment_gets_its_first_replica_set(cluster: Cluster) -> None:
    template = copy.deepcopy(cluster.deployment("claude-pod")["spec"]["template"])
    template["metadata"]["labels"] = {"app": "hello"}
    template["spec"]["containers"][0]["name"] = "hello"
    cluster.store.create(
        DEPLOYMENTS,
        {
            "metadata": {"name": "hello", "namespace": NS},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "hello"}},
                "template": template,
            },
        },
    )
    deployment = await settled(cluster, "hello")
    [rs] = cluster.replica_sets("hello")
    assert rs["metadata"]["annotations"][REVISION] == "1"
    assert deployment["metadata"]["annotations"][REVISION] == "1"
    assert f"Scaled up replica set {rs['metadata']['name']} from 0 to 2" in cluster.events(
        "ScalingReplicaSet"
    )


async def test_stop_cancels_everything(cluster: Cluster) -> None:
    await settled(cluster, "gateway")
    await cluster.controller.stop()
    before = cluster.store.resource_version
    cluster.set_image("gateway", "v2.2.0")
    await asyncio.sleep(0.05)
    assert cluster.store.resource_version == before + 1
    assert not [t for t in asyncio.all_tasks() if t.get_name().endswith(("-worker", "-resync"))]


# -- with the sandbox's kubelet and Debian's registry --------------------------------------

KUBELET_SPEED = 200.0
LIVE_SERVICES = tuple(s for s in seed.SERVICES if s.name in ("gateway", "nova", "claude-pod"))


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """The seeded cluster's images in a real registry, shared by the module's tests."""
    process = RegistryProcess(tmp_path_factory.mktemp("registry"))
    asyncio.run(process.start())
    try:
        asyncio.run(seed_images(process.url, registry_images(LIVE_SERVICES)))
        yield process
    finally:
        asyncio.run(process.stop())


@pytest.fixture
async def live(registry: RegistryProcess) -> AsyncIterator[Cluster]:
    """The seeded cluster run by the controllers and the sandbox's real kubelet."""
    running = Cluster(KUBELET_SPEED, LIVE_SERVICES)
    running.kubelet.active = False
    kubelet = Kubelet(running.store, running.clock, registry.url)
    kubelet.start()
    running.controller.start()
    try:
        yield running
    finally:
        await running.controller.stop()
        await kubelet.stop()


async def test_with_the_kubelet_a_rollout_completes(live: Cluster) -> None:
    name = "gateway"
    await settled(live, name, timeout=10)
    live.set_image(name, "v2.2.0")
    deployment = await settled(live, name, timeout=10)
    new = live.revisions(name)[3]
    assert condition(deployment, "Progressing")["reason"] == "NewReplicaSetAvailable"
    pods = live.pods(name, terminating=True)
    assert {p["metadata"]["labels"][HASH_LABEL] for p in pods} == {
        new["metadata"]["labels"][HASH_LABEL]
    }
    assert all(is_pod_ready(p) for p in pods)
    assert any(m.startswith("Stopping container ") for m in live.events("Killing"))


async def test_with_the_kubelet_a_crash_loop_misses_the_deadline_and_undo_recovers(
    live: Cluster,
) -> None:
    name = "nova"
    await settled(live, name, timeout=10)

    def short_deadline(deployment: Obj) -> None:
        deployment["spec"]["progressDeadlineSeconds"] = 120

    live.change(name, short_deadline)
    live.set_image(name, "v2-broken")
    deployment = await wait_for(
        lambda: rollout_status(d := live.deployment(name)) == "exceeded" and d, timeout=10
    )
    assert condition(deployment, "Available")["status"] == "True"
    assert any(e["reason"] == "BackOff" for e in live.store.list(EVENTS, NS))

    live.undo_to(name, 2)
    deployment = await settled(live, name, timeout=10)
    assert condition(deployment, "Progressing")["reason"] == "NewReplicaSetAvailable"
    assert sorted(live.revisions(name)) == [1, 3, 4]


async def test_with_the_kubelet_a_missing_image_misses_the_deadline(live: Cluster) -> None:
    name = "claude-pod"
    await settled(live, name, timeout=10)

    def short_deadline(deployment: Obj) -> None:
        deployment["spec"]["progressDeadlineSeconds"] = 120

    live.change(name, short_deadline)
    live.set_image(name, "v9.9.9")
    await wait_for(lambda: rollout_status(live.deployment(name)) == "exceeded", timeout=10)
    reasons = {e["reason"] for e in live.store.list(EVENTS, NS)}
    assert "Failed" in reasons
