"""The OpenAPI v3 documents the sandbox serves, generated from `sandbox.resources`.

What kubectl 1.32 needs from them (`kubectl apply`, `create`, `replace` with the default
`--validate=strict`):

- It asks `/openapi/v3` first: `{"paths": {"apis/apps/v1": {"serverRelativeURL": ...}}}`, one
  entry per group version, each URL carrying a `hash` of its document (kubectl caches by URL).
  Only when that fails does it try `/openapi/v2`, which it reads as protobuf only; without
  either it stops with "failed to download openapi".
- To validate an object it fetches its group version's document and looks for a PATCH
  operation whose `x-kubernetes-group-version-kind` is the object's kind. When that operation
  lists the `fieldValidation` query parameter, kubectl leaves validation to the server (and
  sends `fieldValidation=Strict`); otherwise it validates on the client against the v2
  protobuf schema, which is not served here.
- To compute `kubectl apply`'s patch to a live object it uses the document's schemas only when
  the PATCH operation's `requestBody` offers `application/strategic-merge-patch+json`. The
  operations here have no request body, so kubectl tries `/openapi/v2` (404 here) and then
  computes its strategic merge patch from the Go types compiled into it, which are exact for
  every built-in kind.

So each document holds the collection, item and subresource paths of its kinds with their
operations (`x-kubernetes-action`, `x-kubernetes-group-version-kind`, the query parameters
the sandbox honours) and no schemas.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from typing import Any

from sandbox.resources import ALL_RESOURCES, ResourceType

Obj = dict[str, Any]
OPENAPI_VERSION = "3.0.0"
WRITE_PARAMETERS = ("dryRun", "fieldManager", "fieldValidation")
_OK = {"200": {"description": "OK"}}
_SUBRESOURCE_KINDS = {"scale": ("autoscaling", "v1", "Scale")}


def gv_path(group: str, version: str) -> str:
    """`api/v1` or `apis/apps/v1`: a group version's key in `/openapi/v3`."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _query(name: str) -> Obj:
    return {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}


def _path(name: str) -> Obj:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _operation(resource: ResourceType, action: str, suffix: str, subresource: str = "") -> Obj:
    group, version, kind = _SUBRESOURCE_KINDS.get(
        subresource, (resource.group, resource.version, resource.kind)
    )
    writes = action in ("post", "put", "patch")
    parameters = [_query(name) for name in WRITE_PARAMETERS] if writes else []
    if action == "delete":
        parameters = [_query("dryRun")]
    return {
        "operationId": f"{action}{resource.kind}{suffix}",
        "parameters": parameters,
        "responses": _OK,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": kind},
    }


def _paths(resource: ResourceType) -> dict[str, Obj]:
    """The paths one kind is served at, with their operations."""
    base = f"/{gv_path(resource.group, resource.version)}"
    parent = f"{base}/namespaces/{{namespace}}" if resource.namespaced else base
    scope = [_path("namespace")] if resource.namespaced else []
    collection = f"{parent}/{resource.plural}"
    item = f"{collection}/{{name}}"
    paths: dict[str, Obj] = {
        collection: {
            "parameters": scope,
            "get": _operation(resource, "list", ""),
            "post": _operation(resource, "post", ""),
        },
        item: {
            "parameters": [_path("name"), *scope],
            **{verb: _operation(resource, verb, "") for verb in ("get", "put", "patch", "delete")},
        },
    }
    for sub in resource.subresources:
        verbs = ("get",) if sub == "log" else ("get", "put", "patch")
        suffix = sub.capitalize()
        paths[f"{item}/{sub}"] = {
            "parameters": [_path("name"), *scope],
            **{verb: _operation(resource, verb, suffix, sub) for verb in verbs},
        }
    return paths


@cache
def group_version_document(group: str, version: str) -> Obj:
    """The OpenAPI v3 document of one group version (empty paths if none is served)."""
    paths: dict[str, Obj] = {}
    for resource in ALL_RESOURCES:
        if (resource.group, resource.version) == (group, version):
            paths.update(_paths(resource))
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "Kubernetes", "version": "v1.32.4"},
        "paths": paths,
    }


def _hash(document: Obj) -> str:
    return hashlib.sha512(json.dumps(document, sort_keys=True).encode()).hexdigest().upper()


@cache
def discovery() -> Obj:
    """`/openapi/v3`: every served group version and the URL of its document."""
    served = sorted({(r.group, r.version) for r in ALL_RESOURCES})
    return {
        "paths": {
            gv_path(group, version): {
                "serverRelativeURL": f"/openapi/v3/{gv_path(group, version)}"
                f"?hash={_hash(group_version_document(group, version))}"
            }
            for group, version in served
        }
    }


def document_at(path: str) -> Obj | None:
    """The document served at `/openapi/v3/{path}`, or None."""
    for group, version in {(r.group, r.version) for r in ALL_RESOURCES}:
        if gv_path(group, version) == path.strip("/"):
            return group_version_document(group, version)
    return None
