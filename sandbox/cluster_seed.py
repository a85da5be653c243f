"""The HolmOS cluster's starting objects: namespaces, the 13 nodes, and for every seeded
service a Deployment shaped like runbook 1.1, its Service, and its revision history.

Each tag in a service's history was one rollout: one ReplicaSet per tag (`NAME-HASH`,
revisions 1..n, owned by the Deployment), the older ones scaled to zero and annotated with
the change cause, so `kubectl rollout history` and `rollout undo` work from the start. Pods
are not seeded: the controllers create them for the current ReplicaSet once started.
Objects are written in the API server's defaulted form, so a template copied back by an
undo compares equal to its ReplicaSet's. Seeding is idempotent: what exists is left alone.
"""

from __future__ import annotations

import copy
from typing import Any

from sandbox.controller import (
    CHANGE_CAUSE,
    DESIRED_REPLICAS,
    HASH_LABEL,
    MAX_REPLICAS,
    NEW_RS_AVAILABLE,
    PROGRESSING,
    REVISION,
    controller_ref,
    max_surge,
    new_condition,
    pod_template_hash,
)
from sandbox.resources import DEPLOYMENTS, NAMESPACES, NODES, REPLICASETS, SERVICES, ResourceType
from sandbox.seed import NAMESPACE, NODE_NAMES, REGISTRY_HOST, STORAGE_NODE, ServiceSeed
from sandbox.seed import SERVICES as SERVICE_SEEDS
from sandbox.service_ips import cluster_ip, service_spec
from sandbox.store import ObjectStore, now_rfc3339

Obj = dict[str, Any]

KUBELET_VERSION = "v1.32.4"
SEED_NOTE = "(holmbot seed)"
# Sidecar containers' images, mirrored into the private registry like everything else.
SIDECAR_IMAGES: dict[str, str] = {"envoy": f"{REGISTRY_HOST}/envoy:v1.31.2"}
SIDECAR_PORTS: dict[str, int] = {"envoy": 9901}


def seed_cluster(store: ObjectStore, services: tuple[ServiceSeed, ...] = SERVICE_SEEDS) -> None:
    """Create the HolmOS cluster's namespaces, nodes, Deployments, histories and Services."""
    for name in ("default", "kube-system", "kube-public", "kube-node-lease", NAMESPACE):
        _ensure(store, NAMESPACES, namespace_manifest(name))
    for index, name in enumerate(NODE_NAMES, start=1):
        _ensure(store, NODES, node_manifest(name, index))
    _ensure(store, SERVICES, kubernetes_service())
    for service in services:
        seed_service(store, service)


def registry_images(services: tuple[ServiceSeed, ...] = SERVICE_SEEDS) -> dict[str, list[str]]:
    """Repository -> tags the registry must hold for the seeded cluster, sidecars included."""
    images = {service.name: list(service.tags) for service in services}
    for image in SIDECAR_IMAGES.values():
        repository, _, tag = image.removeprefix(f"{REGISTRY_HOST}/").partition(":")
        images.setdefault(repository, []).append(tag)
    return images


def _ensure(store: ObjectStore, resource: ResourceType, obj: Obj) -> Obj:
    meta = obj["metadata"]
    existing = store.find(resource, meta.get("namespace", ""), meta["name"])
    return existing if existing is not None else store.create(resource, obj)


# -- namespaces and nodes -------------------------------------------------------------------


def namespace_manifest(name: str) -> Obj:
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def _node_condition(kind: str, status: str, reason: str, message: str) -> Obj:
    now = now_rfc3339()
    return {
        "type": kind,
        "status": status,
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }


def node_manifest(name: str, index: int) -> Obj:
    """A Ready arm64 node: Raspberry Pis with 8 GiB, the storage node with 4 GiB."""
    storage = name == STORAGE_NODE
    address = f"192.168.8.{196 + index}" if not storage else "192.168.8.210"
    memory_ki = 3_885_056 if storage else 8_048_736
    labels = {
        "beta.kubernetes.io/arch": "arm64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "arm64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
    }
    if index == 1:
        labels["node-role.kubernetes.io/control-plane"] = ""
    capacity = {
        "cpu": "4",
        "ephemeral-storage": "1921724640Ki" if storage else "122030736Ki",
        "memory": f"{memory_ki}Ki",
        "pods": "110",
    }
    return {
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {"podCIDR": f"10.244.{index - 1}.0/24", "podCIDRs": [f"10.244.{index - 1}.0/24"]},
        "status": {
            "capacity": capacity,
            "allocatable": {**capacity, "memory": f"{memory_ki - 102_400}Ki"},
            "conditions": [
                _node_condition(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                _node_condition(
                    "DiskPressure",
                    "False",
                    "KubeletHasNoDiskPressure",
                    "kubelet has no disk pressure",
                ),
                _node_condition(
                    "PIDPressure",
                    "False",
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                ),
                _node_condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": address},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": f"{index:032x}",
                "systemUUID": f"{index:032x}",
                "bootID": f"{index:08x}-0000-4000-8000-{index:012x}",
                "kernelVersion": "6.6.51+rpt-rpi-2712" if not storage else "6.1.0-26-arm64",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "containerRuntimeVersion": "containerd://1.7.24",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": "arm64",
            },
        },
    }


# -- services -------------------------------------------------------------------------------


def kubernetes_service() -> Obj:
    """The API server's own `default/kubernetes` Service."""
    spec = service_spec("10.96.0.1")
    spec.update(
        type="ClusterIP",
        ports=[{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
    )
    return {
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": spec,
        "status": {"loadBalancer": {}},
    }


def service_manifest(service: ServiceSeed, ip: str) -> Obj:
    """The service's NodePort Service (ClusterIP when it has no node port), as in runbook 1.1."""
    port: Obj = {"port": service.port, "protocol": "TCP", "targetPort": service.port}
    spec = service_spec(ip)
    if service.node_port is not None:
        port["nodePort"] = service.node_port
        spec.update(type="NodePort", externalTrafficPolicy="Cluster")
    else:
        spec["type"] = "ClusterIP"
    spec.update(selector={"app": service.name}, ports=[port])
    return {
        "metadata": {"name": service.name, "namespace": NAMESPACE, "labels": {"app": service.name}},
        "spec": spec,
        "status": {"loadBalancer": {}},
    }


# -- deployments ----------------------------------------------------------------------------


def _probe(port: int, initial_delay: int, period: int) -> Obj:
    return {
        "httpGet": {"path": "/health", "port": port, "scheme": "HTTP"},
        "initialDelaySeconds": initial_delay,
        "periodSeconds": period,
        "timeoutSeconds": 1,
        "successThreshold": 1,
        "failureThreshold": 3,
    }


def _main_container(service: ServiceSeed, tag: str) -> Obj:
    return {
        "name": service.name,
        "image": service.image(tag),
        "imagePullPolicy": "Always",
        "ports": [{"containerPort": service.port, "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"cpu": "500m", "memory": service.memory_limit},
        },
        "livenessProbe": _probe(service.port, 10, 30),
        "readinessProbe": _probe(service.port, 5, 10),
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }


def _sidecar_container(name: str) -> Obj:
    return {
        "name": name,
        "image": SIDECAR_IMAGES[name],
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "admin", "containerPort": SIDECAR_PORTS[name], "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": "10m", "memory": "32Mi"},
            "limits": {"cpu": "200m", "memory": "64Mi"},
        },
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }


def pod_template(service: ServiceSeed, tag: str) -> Obj:
    """The service's pod template running `tag`: off the storage node, probed on /health."""
    containers = [_main_container(service, tag)]
    if service.sidecar:
        containers.append(_sidecar_container(service.sidecar))
    return {
        "metadata": {"labels": {"app": service.name}},
        "spec": {
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {
                                        "key": "kubernetes.io/hostname",
                                        "operator": "NotIn",
                                        "values": [STORAGE_NODE],
                                    }
                                ]
                            }
                        ]
                    }
                }
            },
            "containers": containers,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "securityContext": {},
            "schedulerName": "default-scheduler",
        },
    }


def change_cause(service: ServiceSeed, revision_number: int) -> str:
    """What `kubectl rollout history` shows for a seeded revision."""
    if revision_number == 1:
        return (
            f"kubectl apply --filename=services/{service.name}/deployment.yaml "
            f"--namespace={NAMESPACE} {SEED_NOTE}"
        )
    tag = service.history[revision_number - 1]
    return (
        f"kubectl set image deployment/{service.name} {service.name}={service.image(tag)} "
        f"--namespace={NAMESPACE} {SEED_NOTE}"
    )


def deployment_manifest(service: ServiceSeed) -> Obj:
    """The service's Deployment at its current (last) tag."""
    current = len(service.history)
    return {
        "metadata": {
            "name": service.name,
            "namespace": NAMESPACE,
            "labels": {"app": service.name},
            "annotations": {
                REVISION: str(current),
                CHANGE_CAUSE: change_cause(service, current),
            },
        },
        "spec": {
            "replicas": service.replicas,
            "selector": {"matchLabels": {"app": service.name}},
            "template": pod_template(service, service.history[-1]),
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
    }


def replica_set_manifest(deployment: Obj, service: ServiceSeed, revision_number: int) -> Obj:
    """The ReplicaSet of one past rollout; only the current one has replicas."""
    template = pod_template(service, service.history[revision_number - 1])
    template_hash = pod_template_hash(template)
    template["metadata"]["labels"][HASH_LABEL] = template_hash
    labels = dict(template["metadata"]["labels"])
    current = revision_number == len(service.history)
    desired = service.replicas
    return {
        "metadata": {
            "name": f"{service.name}-{template_hash}",
            "namespace": NAMESPACE,
            "labels": labels,
            "annotations": {
                CHANGE_CAUSE: change_cause(service, revision_number),
                DESIRED_REPLICAS: str(desired),
                MAX_REPLICAS: str(desired + max_surge(deployment)),
                REVISION: str(revision_number),
            },
            "ownerReferences": [controller_ref(deployment)],
        },
        "spec": {
            "replicas": desired if current else 0,
            "selector": {"matchLabels": copy.deepcopy(labels)},
            "template": template,
        },
    }


def seed_service(store: ObjectStore, service: ServiceSeed) -> None:
    """One service's Deployment (with its revision history) and Service."""
    if store.find(DEPLOYMENTS, NAMESPACE, service.name) is None:
        deployment = store.create(DEPLOYMENTS, deployment_manifest(service))
        for number in range(1, len(service.history) + 1):
            store.create(REPLICASETS, replica_set_manifest(deployment, service, number))
        current = replica_set_manifest(deployment, service, len(service.history))
        deployment["status"] = {
            "observedGeneration": deployment["metadata"]["generation"],
            "conditions": [
                new_condition(
                    PROGRESSING,
                    "True",
                    NEW_RS_AVAILABLE,
                    f'ReplicaSet "{current["metadata"]["name"]}" has successfully progressed.',
                )
            ],
        }
        store.update(DEPLOYMENTS, deployment, status_only=True)
    taken = {svc["spec"].get("clusterIP", "") for svc in store.list(SERVICES)}
    _ensure(store, SERVICES, service_manifest(service, cluster_ip(service.name, taken)))
