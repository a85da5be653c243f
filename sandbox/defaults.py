"""Server-side defaulting and validation for the kinds clients create and change.

The real API server defaults every object it decodes, so a ReplicaSet's template and its
Deployment's template compare equal (kubectl's rollback relies on it), and rejects invalid
objects with 422 before storing them.
"""

from __future__ import annotations

from typing import Any

from sandbox.manifests import default_manifest, validate_manifest
from sandbox.resources import DEPLOYMENTS, JOBS, PODS, REPLICASETS, ResourceType
from sandbox.store import ApiError, invalid

Obj = dict[str, Any]


def _default_probe(probe: Obj | None) -> None:
    if not probe:
        return
    for key, value in (
        ("timeoutSeconds", 1),
        ("periodSeconds", 10),
        ("successThreshold", 1),
        ("failureThreshold", 3),
    ):
        probe.setdefault(key, value)
    if "httpGet" in probe:
        probe["httpGet"].setdefault("scheme", "HTTP")


def _default_container(container: Obj) -> None:
    image = container.get("image") or ""
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    container.setdefault("imagePullPolicy", "Always" if tag in ("", "latest") else "IfNotPresent")
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    container.setdefault("resources", {})
    for port in container.get("ports") or []:
        port.setdefault("protocol", "TCP")
    _default_probe(container.get("livenessProbe"))
    _default_probe(container.get("readinessProbe"))


def default_pod_spec(spec: Obj) -> None:
    """Apply the API server's pod spec defaults in place."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for container in spec.get("initContainers") or []:
        _default_container(container)
    for container in spec.get("containers") or []:
        _default_container(container)


def _default_workload(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    template = spec.setdefault("template", {})
    template.setdefault("metadata", {})
    default_pod_spec(template.setdefault("spec", {}))


def _default_deployment(obj: Obj) -> None:
    _default_workload(obj)
    spec = obj["spec"]
    strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        strategy["type"] = "RollingUpdate"
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", "25%")
        rolling.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)


def apply_defaults(resource: ResourceType, obj: Obj) -> None:
    """Default `obj` in place as the API server does when it decodes it."""
    if resource is DEPLOYMENTS:
        _default_deployment(obj)
    elif resource is REPLICASETS:
        _default_workload(obj)
    elif resource is PODS:
        default_pod_spec(obj.setdefault("spec", {}))
    else:
        default_manifest(resource, obj)
        if resource is JOBS:
            default_pod_spec(obj["spec"]["template"]["spec"])


def _validate_containers(resource: ResourceType, name: str, path: str, pod_spec: Obj) -> None:
    containers = pod_spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise invalid(resource, name, f"{path}.containers", "Required value")
    seen: set[str] = set()
    for index, container in enumerate(containers):
        field = f"{path}.containers[{index}]"
        container_name = container.get("name")
        if not container_name:
            raise invalid(resource, name, f"{field}.name", "Required value")
        if container_name in seen:
            raise invalid(resource, name, f"{field}.name", f'Duplicate value: "{container_name}"')
        seen.add(container_name)
        if not container.get("image"):
            raise invalid(resource, name, f"{field}.image", "Required value")


def validate(resource: ResourceType, obj: Obj, old: Obj | None = None) -> None:
    """Reject an invalid object with the API server's 422 (`old`: the stored one, on updates)."""
    name = obj.get("metadata", {}).get("name", "")
    if resource is PODS:
        _validate_containers(resource, name, "spec", obj.get("spec") or {})
        return
    if resource not in (DEPLOYMENTS, REPLICASETS):
        validate_manifest(resource, obj, name, old)
        if resource is JOBS:
            template_spec = (obj.get("spec") or {}).get("template", {}).get("spec") or {}
            _validate_containers(resource, name, "spec.template.spec", template_spec)
        return
    spec = obj.get("spec") or {}
    replicas = spec.get("replicas")
    if not isinstance(replicas, int) or replicas < 0:
        raise invalid(
            resource,
            name,
            "spec.replicas",
            f"Invalid value: {replicas}: must be greater than or equal to 0",
        )
    selector = (spec.get("selector") or {}).get("matchLabels")
    if not selector and not (spec.get("selector") or {}).get("matchExpressions"):
        raise invalid(resource, name, "spec.selector", "Required value")
    labels = spec.get("template", {}).get("metadata", {}).get("labels") or {}
    if selector and any(labels.get(key) != value for key, value in selector.items()):
        raise invalid(
            resource,
            name,
            "spec.template.metadata.labels",
            f"Invalid value: {labels}: `selector` does not match template `labels`",
        )
    if old is not None and old.get("spec", {}).get("selector") != spec.get("selector"):
        raise invalid(resource, name, "spec.selector", "Invalid value: field is immutable")
    _validate_containers(
        resource, name, "spec.template.spec", spec.get("template", {}).get("spec") or {}
    )


def require_object(body: Any) -> Obj:
    """A decoded request body must be a JSON object."""
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequest", "the body of the request was not a JSON object")
    return body
