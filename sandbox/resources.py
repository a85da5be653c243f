"""The resource types the sandbox's Kubernetes API serves, with what discovery needs.

`fields` are a kind's top-level fields besides `apiVersion`, `kind` and `metadata`: what a
strict field validation (`fieldValidation=Strict`) accepts at the top of an object.
`categories` are discovery's categories (`kubectl get all` lists the `all` ones).
"""

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
    fields: tuple[str, ...] = ("spec", "status")
    categories: tuple[str, ...] = ()

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
    categories=("all",),
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
    categories=("all",),
)
PODS = ResourceType(
    "",
    "v1",
    "pods",
    "Pod",
    True,
    short_names=("po",),
    subresources=("status", "log"),
    categories=("all",),
)
EVENTS = ResourceType(
    "",
    "v1",
    "events",
    "Event",
    True,
    short_names=("ev",),
    fields=(
        "involvedObject",
        "reason",
        "message",
        "source",
        "firstTimestamp",
        "lastTimestamp",
        "count",
        "type",
        "eventTime",
        "series",
        "action",
        "related",
        "reportingComponent",
        "reportingInstance",
    ),
)
NODES = ResourceType(
    "", "v1", "nodes", "Node", False, short_names=("no",), subresources=("status",)
)
SERVICES = ResourceType(
    "",
    "v1",
    "services",
    "Service",
    True,
    short_names=("svc",),
    subresources=("status",),
    categories=("all",),
)
ENDPOINTS = ResourceType(
    "", "v1", "endpoints", "Endpoints", True, short_names=("ep",), fields=("subsets",)
)
NAMESPACES = ResourceType("", "v1", "namespaces", "Namespace", False, short_names=("ns",))
SERVICE_ACCOUNTS = ResourceType(
    "",
    "v1",
    "serviceaccounts",
    "ServiceAccount",
    True,
    short_names=("sa",),
    fields=("secrets", "imagePullSecrets", "automountServiceAccountToken"),
)
CONFIG_MAPS = ResourceType(
    "",
    "v1",
    "configmaps",
    "ConfigMap",
    True,
    short_names=("cm",),
    fields=("data", "binaryData", "immutable"),
)
SECRETS = ResourceType(
    "", "v1", "secrets", "Secret", True, fields=("data", "stringData", "type", "immutable")
)
PERSISTENT_VOLUME_CLAIMS = ResourceType(
    "",
    "v1",
    "persistentvolumeclaims",
    "PersistentVolumeClaim",
    True,
    short_names=("pvc",),
    subresources=("status",),
)
JOBS = ResourceType(
    "batch",
    "v1",
    "jobs",
    "Job",
    True,
    subresources=("status",),
    has_generation=True,
    categories=("all",),
)
RBAC = "rbac.authorization.k8s.io"
ROLES = ResourceType(RBAC, "v1", "roles", "Role", True, fields=("rules",))
ROLE_BINDINGS = ResourceType(
    RBAC, "v1", "rolebindings", "RoleBinding", True, fields=("subjects", "roleRef")
)

ALL_RESOURCES: tuple[ResourceType, ...] = (
    DEPLOYMENTS,
    REPLICASETS,
    PODS,
    EVENTS,
    NODES,
    SERVICES,
    ENDPOINTS,
    NAMESPACES,
    SERVICE_ACCOUNTS,
    CONFIG_MAPS,
    SECRETS,
    PERSISTENT_VOLUME_CLAIMS,
    JOBS,
    ROLES,
    ROLE_BINDINGS,
)


def find_resource(group: str, version: str, plural: str) -> ResourceType | None:
    """The served resource at `/api[s]/{group}/{version}/.../{plural}`, if any."""
    for resource in ALL_RESOURCES:
        if (resource.group, resource.version, resource.plural) == (group, version, plural):
            return resource
    return None
