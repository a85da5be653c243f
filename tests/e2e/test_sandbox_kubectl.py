"""The whole sandbox through real kubectl: what an operator following the runbook sees."""

from __future__ import annotations

import json

from sandbox.cluster import Sandbox
from sandbox.resources import DEPLOYMENTS, PODS, REPLICASETS
from tests.kubectl import kubectl
from tests.polling import eventually

NS = ("-n", "holm")


def deployment(sandbox: Sandbox, name: str) -> dict:
    return sandbox.store.get(DEPLOYMENTS, "holm", name)


def images(sandbox: Sandbox, name: str) -> list[str]:
    spec = deployment(sandbox, name)["spec"]["template"]["spec"]
    return [container["image"] for container in spec["containers"]]


async def settled(sandbox: Sandbox, name: str) -> None:
    def done() -> bool:
        obj = deployment(sandbox, name)
        status, replicas = obj.get("status", {}), obj["spec"]["replicas"]
        return (
            status.get("observedGeneration") == obj["metadata"]["generation"]
            and status.get("updatedReplicas", 0) == replicas
            and status.get("availableReplicas", 0) == replicas
            and status.get("replicas", 0) == replicas
        )

    await eventually(done)


async def test_set_image_rolls_out_and_history_records_it(sandbox: Sandbox) -> None:
    config = sandbox.kubeconfig
    await settled(sandbox, "nova")
    changed = await kubectl(
        config, "set", "image", "deployment/nova", "nova=10.110.67.87:5000/nova:v2", *NS
    )
    assert changed.stdout.strip() == "deployment.apps/nova image updated"
    status = await kubectl(config, "rollout", "status", "deployment/nova", *NS, "--timeout=60s")
    assert status.code == 0, status.stderr
    assert status.stdout.strip().splitlines()[-1] == 'deployment "nova" successfully rolled out'
    history = await kubectl(config, "rollout", "history", "deployment/nova", *NS)
    rows = [line.split()[0] for line in history.stdout.strip().splitlines()[2:]]
    assert rows == ["1", "2", "3"]
    pods = await kubectl(config, "get", "pods", "-l", "app=nova", *NS, "-o", "json")
    running = json.loads(pods.stdout)["items"]
    assert {p["spec"]["containers"][0]["image"] for p in running} == {"10.110.67.87:5000/nova:v2"}
    assert all(p["status"]["phase"] == "Running" for p in running)


async def test_undo_and_undo_to_revision(sandbox: Sandbox) -> None:
    config = sandbox.kubeconfig
    await settled(sandbox, "pulse")
    assert images(sandbox, "pulse") == ["10.110.67.87:5000/pulse:v1.2"]
    undo = await kubectl(config, "rollout", "undo", "deployment/pulse", *NS)
    assert undo.stdout.strip() == "deployment.apps/pulse rolled back"
    assert images(sandbox, "pulse") == ["10.110.67.87:5000/pulse:v1.1"]
    await settled(sandbox, "pulse")
    to_first = await kubectl(config, "rollout", "undo", "deployment/pulse", "--to-revision=1", *NS)
    assert to_first.code == 0, to_first.stderr
    assert images(sandbox, "pulse") == ["10.110.67.87:5000/pulse:v1.0"]
    history = await kubectl(config, "rollout", "history", "deployment/pulse", *NS)
    revisions = [line.split()[0] for line in history.stdout.strip().splitlines()[2:]]
    assert revisions == ["3", "4", "5"]
    again = await kubectl(config, "rollout", "undo", "deployment/pulse", "--to-revision=5", *NS)
    assert "skipped rollback (current template already matches revision 5)" in again.stdout
    missing = await kubectl(config, "rollout", "undo", "deployment/pulse", "--to-revision=1", *NS)
    assert missing.code == 1
    assert "unable to find specified revision 1 in history" in missing.stderr


def pod_names(sandbox: Sandbox, app: str) -> set[str]:
    """The live (not terminating) pods of `app`."""
    return {
        pod["metadata"]["name"]
        for pod in sandbox.store.list(PODS, "holm")
        if pod["metadata"]["labels"].get("app") == app
        and not pod["metadata"].get("deletionTimestamp")
    }


async def test_restart_and_scale(sandbox: Sandbox) -> None:
    config = sandbox.kubeconfig
    await settled(sandbox, "holmos-shell")
    before = pod_names(sandbox, "holmos-shell")
    restarted = await kubectl(config, "rollout", "restart", "deployment/holmos-shell", *NS)
    assert restarted.stdout.strip() == "deployment.apps/holmos-shell restarted"
    template = deployment(sandbox, "holmos-shell")["spec"]["template"]
    assert "kubectl.kubernetes.io/restartedAt" in template["metadata"]["annotations"]
    await settled(sandbox, "holmos-shell")
    await eventually(lambda: len(pod_names(sandbox, "holmos-shell")) == 2)
    assert not before & pod_names(sandbox, "holmos-shell")
    scaled = await kubectl(config, "scale", "deployment/holmos-shell", "--replicas=4", *NS)
    assert scaled.stdout.strip() == "deployment.apps/holmos-shell scaled"
    await settled(sandbox, "holmos-shell")
    table = await kubectl(config, "get", "deploy", "holmos-shell", *NS)
    assert table.stdout.splitlines()[1].split()[1:4] == ["4/4", "4", "4"]


async def test_missing_tag_is_stuck_in_image_pull_back_off(sandbox: Sandbox) -> None:
    config = sandbox.kubeconfig
    await settled(sandbox, "claude-pod")
    await kubectl(
        config,
        "set",
        "image",
        "deployment/claude-pod",
        "claude-pod=10.110.67.87:5000/claude-pod:v9.9",
        *NS,
    )

    def pulling_failed() -> str | None:
        return next(
            (
                p["metadata"]["name"]
                for p in sandbox.store.list(PODS, "holm")
                if p["metadata"]["labels"].get("app") == "claude-pod"
                for s in (p.get("status") or {}).get("containerStatuses") or []
                if (s.get("state") or {}).get("waiting", {}).get("reason") == "ImagePullBackOff"
            ),
            None,
        )

    stuck = await eventually(pulling_failed)
    # the pull retries cycle through ErrImagePull: the nodes' kubelet stops here, so the pods
    # stay as they are (the controllers and the API server go on)
    assert sandbox.kubelet is not None
    await sandbox.kubelet.stop()
    pods = await kubectl(config, "get", "pods", "-l", "app=claude-pod", *NS)
    rows = {row.split()[0]: row.split()[1:3] for row in pods.stdout.splitlines()[1:]}
    assert rows.pop(stuck) == ["0/1", "ImagePullBackOff"], pods.stdout
    assert list(rows.values()) == [["1/1", "Running"]], pods.stdout  # the old pod serves on
    status = await kubectl(
        config, "rollout", "status", "deployment/claude-pod", *NS, "--timeout=2s"
    )
    assert status.code == 1
    assert status.stdout.strip().splitlines()[-1] == (
        'Waiting for deployment "claude-pod" rollout to finish: '
        "1 old replicas are pending termination..."
    )
    assert "timed out waiting for the condition" in status.stderr
    describe = await kubectl(config, "describe", "pods", "-l", "app=claude-pod", *NS)
    assert "Failed to pull image" in describe.stdout
    assert deployment(sandbox, "claude-pod")["status"].get("availableReplicas") == 1


async def test_crash_loop_shows_restarts_and_previous_logs(sandbox: Sandbox) -> None:
    config = sandbox.kubeconfig
    await settled(sandbox, "nova")
    await kubectl(
        config, "set", "image", "deployment/nova", "nova=10.110.67.87:5000/nova:v2-broken", *NS
    )

    def crashed_pod() -> str | None:
        for pod in sandbox.store.list(PODS, "holm"):
            for status in (pod.get("status") or {}).get("containerStatuses") or []:
                waiting = (status.get("state") or {}).get("waiting") or {}
                if (
                    status["image"].endswith("v2-broken")
                    and status.get("restartCount", 0) >= 2
                    and waiting.get("reason") == "CrashLoopBackOff"
                ):
                    return pod["metadata"]["name"]
        return None

    name = await eventually(crashed_pod, timeout=60)
    # a crash loop cycles through Running, Error and CrashLoopBackOff: the nodes' kubelet stops
    # in the back-off, so the pod stays as it is (its logs are kept)
    assert sandbox.kubelet is not None
    await sandbox.kubelet.stop()
    [status] = sandbox.store.get(PODS, "holm", name)["status"]["containerStatuses"]
    pods = await kubectl(config, "get", "pod", name, *NS)
    _, ready, state, restarts, *_ = pods.stdout.splitlines()[1].split()
    assert (ready, state, restarts) == ("0/1", "CrashLoopBackOff", str(status["restartCount"]))
    previous = await kubectl(config, "logs", name, "--previous", *NS)
    assert previous.code == 0, previous.stderr
    assert previous.stdout.strip()
    describe = await kubectl(config, "describe", "pod", name, *NS)
    assert "Last State:     Terminated" in describe.stdout
    assert "Exit Code:    1" in describe.stdout
    healthy_pod = next(
        p["metadata"]["name"]
        for p in sandbox.store.list(PODS, "holm")
        if p["metadata"]["labels"].get("app") == "postgres"
    )
    no_previous = await kubectl(config, "logs", healthy_pod, "--previous", *NS)
    assert no_previous.code == 1
    assert (
        f'previous terminated container "postgres" in pod "{healthy_pod}" not found'
        in no_previous.stderr
    )


async def test_logs_by_label_and_replica_sets_listed(sandbox: Sandbox) -> None:
    config = sandbox.kubeconfig
    await settled(sandbox, "gateway")
    gateways = pod_names(sandbox, "gateway")
    assert len(gateways) == 3
    logs = await kubectl(
        config, "logs", "-l", "app=gateway", "-c", "gateway", "--tail=5", "--prefix", *NS
    )
    assert logs.code == 0, logs.stderr
    # every ready pod has logged its start-up (5 lines) at least: 5 lines from each of the 3
    lines = logs.stdout.splitlines()
    sources = [line.split(" ", 1)[0] for line in lines]
    assert sorted(sources) == sorted(f"[pod/{name}/gateway]" for name in gateways for _ in range(5))
    assert all(line.split(" ", 1)[1].startswith(("INFO ", "WARN ")) for line in lines), lines
    rs = await kubectl(config, "get", "rs", "-l", "app=gateway", *NS)
    assert rs.stdout.splitlines()[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    owned = sandbox.store.list(REPLICASETS, "holm")
    assert len([r for r in owned if r["metadata"]["labels"]["app"] == "gateway"]) == 2
    nodes = await kubectl(config, "get", "nodes")
    assert len(nodes.stdout.strip().splitlines()) == 14
    assert "openmediavault" in nodes.stdout


async def test_stale_write_through_kubectl_replace_is_a_conflict(sandbox: Sandbox) -> None:
    config = sandbox.kubeconfig
    fetched = await kubectl(config, "get", "deploy", "scribe", *NS, "-o", "json")
    stale = json.loads(fetched.stdout)
    await kubectl(config, "scale", "deployment/scribe", "--replicas=2", *NS)
    stale["spec"]["replicas"] = 3
    path = sandbox.state_dir / "stale.json"
    path.write_text(json.dumps(stale))
    replaced = await kubectl(config, "replace", "-f", str(path), "--validate=false")
    assert replaced.code == 1
    assert "the object has been modified" in replaced.stderr
    assert deployment(sandbox, "scribe")["spec"]["replicas"] == 2
