"""The resource types the sandbox's Kubernetes API serves, with what discovery needs."""

from __future__ import annotations

from dataclasses import dataclass

READ_VERBS = ("get", "list", "watch")
ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    """One served resource: where it lives in the API and how it behaves."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...] = ALL_VERBS
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    has_generation: bool = False

    @property
    def api_version(self) -> str:
        """`apps/v1` or, for the core group, `v1`."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()


DEPLOYMENTS = ResourceType(
    "apps",
    "v1",
    "deployments",
    "Deployment",
    True,
    short_names=("deploy",),
    subresources=("status", "scale"),
    has_generation=True,
)
REPLICASETS = ResourceType(
    "apps",
    "v1",
    "replicasets",
    "ReplicaSet",
    True,
    short_names=("rs",),
    subresources=("status",),
    has_generation=True,
)
PODS = ResourceType(
    "", "v1", "pods", "Pod", True, short_names=("po",), subresources=("status", "log")
)
EVENTS = ResourceType("", "v1", "events", "Event", True, short_names=("ev",))
NODES = ResourceType(
    "", "v1", "nodes", "Node", False, short_names=("no",), subresources=("status",)
)
SERVICES = ResourceType("", "v1", "services", "Service", True, short_names=("svc",))
ENDPOINTS = ResourceType("", "v1", "endpoints", "Endpoints", True, short_names=("ep",))
NAMESPACES = ResourceType("", "v1", "namespaces", "Namespace", False, short_names=("ns",))

ALL_RESOURCES: tuple[ResourceType, ...] = (
    DEPLOYMENTS,
    REPLICASETS,
    PODS,
    EVENTS,
    NODES,
    SERVICES,
    ENDPOINTS,
    NAMESPACES,
)


def find_resource(group: str, version: str, plural: str) -> ResourceType | None:
    """The served resource at `/api[s]/{group}/{version}/.../{plural}`, if any."""
    for resource in ALL_RESOURCES:
        if (resource.group, resource.version, resource.plural) == (group, version, plural):
            return resource
    return None
