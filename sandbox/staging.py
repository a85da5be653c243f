"""A hand-built cluster state behind the sandbox's real Kubernetes API server.

For tests and benchmarks that need an exact pod state (an OOMKilled last termination, a crash
loop, a second container, sixty services) right now rather than after a controller has acted
it out. The bot reaches it the production way: a kubeconfig, the official client, HTTP on
loopback.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sandbox.health import HealthBoard
from sandbox.podlogs import ContainerLog, PodLogs
from sandbox.resources import DEPLOYMENTS, EVENTS, NAMESPACES, NODES, PODS, SERVICES
from sandbox.store import ObjectStore, now_rfc3339

NAMESPACE = "holm"
Obj = dict[str, Any]


@dataclass
class Container:
    """A container of a hand-built pod: its state now and how it last ended."""

    name: str
    state: str = "running"  # running, or a waiting reason such as CrashLoopBackOff
    ready: bool = True
    restarts: int = 0
    last_reason: str | None = None  # OOMKilled, Error ...
    last_exit: int = 1
    logs: list[str] = field(default_factory=list)
    previous_logs: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class Stage:
    """The store behind the API server, its pod logs and the service health board."""

    store: ObjectStore
    logs: PodLogs
    board: HealthBoard
    _open: dict[tuple[str, str], ContainerLog] = field(default_factory=dict)

    @staticmethod
    def new_store() -> ObjectStore:
        store = ObjectStore()
        store.create(NAMESPACES, {"metadata": {"name": NAMESPACE}})
        return store

    def node(self, name: str, ready: bool = True, reason: str = "KubeletNotReady") -> None:
        condition = {"type": "Ready", "status": "True" if ready else "False"}
        if not ready:
            condition["reason"] = reason
        self.store.create(
            NODES, {"metadata": {"name": name}, "status": {"conditions": [condition]}}
        )

    def deployment(
        self,
        name: str,
        *,
        replicas: int = 1,
        available: int | None = None,
        containers: tuple[str, ...] | None = None,
        http: bool = True,
        port: int = 8080,
        memory: str = "256Mi",
        tag: str = "v1",
        service: bool = True,
    ) -> Obj:
        """A Deployment (and its Service), with the status a controller would have written."""
        probe = {"httpGet": {"path": "/health", "port": port}} if http else None
        specs = []
        for container in containers or (name,):
            spec: Obj = {
                "name": container,
                "image": f"10.110.67.87:5000/{container}:{tag}",
                "ports": [{"containerPort": port}],
                "resources": {"limits": {"memory": memory}},
            }
            if probe:
                spec["livenessProbe"] = spec["readinessProbe"] = probe
            specs.append(spec)
        available = replicas if available is None else available
        if http:
            self.board.set(name, "ok")
        deployment = self.store.create(
            DEPLOYMENTS,
            {
                "metadata": {"name": name, "labels": {"app": name}},
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {"containers": specs},
                    },
                },
            },
            NAMESPACE,
        )
        deployment["status"] = {
            "observedGeneration": 1,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": available,
            "availableReplicas": available,
        }
        self.store.update(DEPLOYMENTS, deployment, status_only=True)
        if service:
            self.store.create(
                SERVICES,
                {
                    "metadata": {"name": name},
                    "spec": {"selector": {"app": name}, "ports": [{"port": port}]},
                },
                NAMESPACE,
            )
        return deployment

    def pod(self, app: str, suffix: str, *containers: Container, phase: str = "Running") -> Obj:
        """A pod of `app` whose containers are as described, with their logs written."""
        containers = containers or (Container(app),)
        name = f"{app}-7d9f8c6b5-{suffix}"
        statuses = []
        for c in containers:
            status: Obj = {
                "name": c.name,
                "ready": c.ready and c.state == "running",
                "restartCount": c.restarts,
                "image": f"10.110.67.87:5000/{c.name}:v1",
                "containerID": f"containerd://{uuid.uuid4().hex}",
                "state": {"running": {"startedAt": now_rfc3339()}}
                if c.state == "running"
                else {"waiting": {"reason": c.state}},
                "lastState": {},
            }
            if c.last_reason:
                status["lastState"] = {
                    "terminated": {
                        "reason": c.last_reason,
                        "exitCode": c.last_exit,
                        "finishedAt": now_rfc3339(),
                        "containerID": f"containerd://{uuid.uuid4().hex}",
                    }
                }
            statuses.append(status)
        ready = all(s["ready"] for s in statuses) and phase == "Running"
        pod = self.store.create(
            PODS,
            {
                "metadata": {"name": name, "labels": {"app": app}},
                "spec": {
                    "nodeName": "rpi1",
                    "containers": [{"name": c.name, "image": f"{c.name}:v1"} for c in containers],
                },
            },
            NAMESPACE,
        )
        pod["status"] = {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": statuses,
        }
        pod = self.store.update(PODS, pod, status_only=True)
        uid = pod["metadata"]["uid"]
        for c, status in zip(containers, statuses, strict=True):
            last = status["lastState"].get("terminated")
            if last:
                self.logs.open(uid, c.name, last["containerID"]).write("\n".join(c.previous_logs))
            if c.state == "running":
                self._open[name, c.name] = self.logs.open(uid, c.name, status["containerID"])
                for line in c.logs:
                    self.say(name, line, c.name)
        return pod

    def many_services(self, count: int, hanging: int = 0) -> list[str]:
        """`count` one-pod services `svc-NN` answering `/health`; the first `hanging` hang."""
        names = [f"svc-{n:02d}" for n in range(count)]
        for name in names:
            self.deployment(name)
            self.pod(name, "abcde")
        for name in names[:hanging]:
            self.board.set(name, "hang")
        return names

    def say(self, pod: str, line: str, container: str | None = None) -> None:
        """Write one line to a running container's log (its own container by default)."""
        key = next(k for k in self._open if k[0] == pod and container in (None, k[1]))
        self._open[key].write(line)

    def warning(self, pod: Obj, reason: str, message: str, count: int = 1) -> None:
        meta = pod["metadata"]
        self.store.create(
            EVENTS,
            {
                "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:8]}"},
                "involvedObject": {"kind": pod["kind"], "name": meta["name"], "uid": meta["uid"]},
                "reason": reason,
                "message": message,
                "type": "Warning",
                "count": count,
                "lastTimestamp": now_rfc3339(),
            },
            NAMESPACE,
        )
