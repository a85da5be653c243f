"""What the sandbox's API server was asked, in the terms RBAC authorizes: one entry a request.

Each resource request becomes an `ApiRequest`: the verb Kubernetes' authorizer would check
(`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`), the API
group ("" for core), the resource, the subresource ("" for none) and the namespace (None for a
cluster-wide request: a cluster-scoped kind, or a namespaced kind across all namespaces).
Discovery, `/version` and `/openapi` are not resource requests and are not recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


@dataclass(frozen=True)
class ApiRequest:
    """One request as an authorizer sees it."""

    verb: str
    group: str
    resource: str
    subresource: str = ""
    namespace: str | None = None


def authorizer_verb(method: str, has_name: bool, watch: bool) -> str:
    """The RBAC verb of an HTTP request on a collection (`has_name` false) or one object."""
    if method == "GET":
        if watch:
            return "watch"
        return "get" if has_name else "list"
    if method == "DELETE":
        return "delete" if has_name else "deletecollection"
    return _VERBS.get(method, method.lower())
