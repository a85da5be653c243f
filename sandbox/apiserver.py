"""The sandbox's Kubernetes API server: the REST and watch protocol kubectl and clients speak.

Serves discovery, OpenAPI v3 (`sandbox.openapi`), list/watch/get/create/replace/patch/delete
on the resources in `sandbox.resources`, the `status` and `scale` subresources, pod logs,
Table output for `kubectl get`, and Kubernetes-shaped `Status` errors: a bad request never
gets a traceback.

Writes honour `dryRun=All` (checked, answered, not stored) and `fieldValidation`: fields a
kind does not have (at the top level and in `metadata`) are dropped, as decoding into the
API's types drops them, with a `Warning` header (`Warn`, the default), silently (`Ignore`), or
refused with 400 (`Strict`, what kubectl sends). Every resource request is appended to
`requests` as the authorizer would see it (`sandbox.recorder`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from sandbox import openapi, tables
from sandbox.defaults import apply_defaults, require_object, validate
from sandbox.patching import PatchError, apply_patch
from sandbox.podlogs import PodLogs
from sandbox.recorder import ApiRequest, authorizer_verb
from sandbox.resources import ALL_RESOURCES, PODS, SERVICES, ResourceType, find_resource
from sandbox.selectors import SelectorError, field_selector, label_selector, selector_to_string
from sandbox.service_ips import assign_cluster_ip, keep_cluster_ip
from sandbox.store import ApiError, ObjectStore

log = logging.getLogger(__name__)

Obj = dict[str, Any]
SERVER_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.4",
    "gitCommit": "59526cd4867447956156ae3a602fcbac10a2c335",
    "gitTreeState": "clean",
    "buildDate": "2025-04-22T16:02:27Z",
    "goVersion": "go1.23.6",
    "compiler": "gc",
    "platform": "linux/arm64",
}
DEFAULT_WATCH_TIMEOUT = 1800
FIELD_VALIDATIONS = ("Ignore", "Warn", "Strict")
OBJECT_META_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers=headers,
    )


def _bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def _method_not_allowed() -> ApiError:
    return ApiError(
        405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
    )


def _not_served() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def _int_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError as error:
        raise _bad_request(f"{name}: invalid value {raw!r}: must be an integer") from error


def _bool_param(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("true", "1")


def _dry_run(request: web.Request) -> bool:
    """`dryRun=All` given: check and answer the write, store nothing."""
    values = request.query.getall("dryRun", [])
    for value in values:
        if value != "All":
            raise _bad_request(f'Invalid dryRun value: "{value}": supported values: "All"')
    return bool(values)


def _unknown_fields(resource: ResourceType, body: Obj) -> list[str]:
    """Drop, and name, the top-level and metadata fields `resource`'s kind does not have."""
    known = {"apiVersion", "kind", "metadata", *resource.fields}
    unknown = [field for field in body if field not in known]
    meta = body.get("metadata")
    extra_meta = [f for f in meta if f not in OBJECT_META_FIELDS] if isinstance(meta, dict) else []
    for field in unknown:
        del body[field]
    for field in extra_meta:
        del meta[field]  # type: ignore[union-attr]
    return [*unknown, *(f"metadata.{field}" for field in extra_meta)]


def _field_warnings(request: web.Request, resource: ResourceType, body: Obj) -> dict[str, str]:
    """Apply `fieldValidation` to a write's object; the `Warning` headers to answer with."""
    directive = request.query.get("fieldValidation") or "Warn"
    if directive not in FIELD_VALIDATIONS:
        raise _bad_request(
            f'fieldValidation: Unsupported value: "{directive}": supported values: '
            + ", ".join(f'"{value}"' for value in FIELD_VALIDATIONS)
        )
    unknown = _unknown_fields(resource, body)
    if not unknown or directive == "Ignore":
        return {}
    found = [f'unknown field "{field}"' for field in unknown]
    if directive == "Strict":
        raise _bad_request("strict decoding error: " + ", ".join(found))
    return {"Warning": ", ".join("299 - " + json.dumps(text) for text in found)}


def _wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def _table(request: web.Request, resource: ResourceType, items: list[Obj], rv: str) -> web.Response:
    """Answer `kubectl get` with a server-side printed Table."""
    include = request.query.get("includeObject", "Metadata")
    if include not in ("", "Metadata", "Object", "None"):
        raise _bad_request(f'unrecognized includeObject value: "{include}"')
    return _json(tables.to_table(resource, items, include_object=include, resource_version=rv))


async def _decode_body(request: web.Request) -> Any:
    content_type = request.headers.get("Content-Type", "application/json").split(";")[0].strip()
    if content_type not in ("application/json", ""):
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types include: "
            f"application/json (got {content_type})",
        )
    raw = await request.read()
    try:
        return json.loads(raw)
    except json.JSONDecodeError as error:
        raise _bad_request(f"error decoding request body: {error.msg}") from error


class ApiServer:
    """An aiohttp application serving an `ObjectStore` as the Kubernetes API."""

    def __init__(self, store: ObjectStore, logs: PodLogs | None = None) -> None:
        self.store, self.logs = store, logs
        self.requests: list[ApiRequest] = []
        self.app = web.Application(middlewares=[self._errors])
        self.app.router.add_get("/version", self._version)
        self.app.router.add_get("/openapi/v3", self._openapi_discovery)
        self.app.router.add_get("/openapi/v3/{path:.+}", self._openapi_document)
        for probe in ("/healthz", "/readyz", "/livez"):
            self.app.router.add_get(probe, self._ok)
        self.app.router.add_get("/api", self._core_versions)
        self.app.router.add_get("/apis", self._groups)
        self.app.router.add_route("*", "/api/{version}{rest:.*}", self._core)
        self.app.router.add_route("*", "/apis/{group}/{version}{rest:.*}", self._grouped)

    # middlewares

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as error:
            return _json(error.status(), error.code)
        except PatchError as error:
            return _json(ApiError(error.code, error.reason, error.message).status(), error.code)
        except SelectorError as error:
            return _json(_bad_request(str(error)).status(), 400)
        except web.HTTPException as error:
            if error.status == 404:
                return _json(_not_served().status(), 404)
            raise
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("internal error serving %s %s", request.method, request.path)
            status = ApiError(
                500,
                "InternalError",
                "an error on the server has prevented the request from succeeding",
            )
            return _json(status.status(), 500)

    # discovery

    async def _ok(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _version(self, request: web.Request) -> web.Response:
        return _json(SERVER_VERSION)

    async def _openapi_discovery(self, request: web.Request) -> web.Response:
        return _json(openapi.discovery())

    async def _openapi_document(self, request: web.Request) -> web.Response:
        document = openapi.document_at(request.match_info["path"])
        if document is None:
            raise _not_served()
        return _json(document)

    async def _core_versions(self, request: web.Request) -> web.Response:
        return _json(
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": request.host}
                ],
            }
        )

    async def _groups(self, request: web.Request) -> web.Response:
        groups = sorted({(r.group, r.version) for r in ALL_RESOURCES if r.group})
        return _json(
            {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [
                    {
                        "name": group,
                        "versions": [{"groupVersion": f"{group}/{version}", "version": version}],
                        "preferredVersion": {
                            "groupVersion": f"{group}/{version}",
                            "version": version,
                        },
                    }
                    for group, version in groups
                ],
            }
        )

    @staticmethod
    def _resource_list(group: str, version: str) -> Obj:
        entries: list[Obj] = []
        for resource in ALL_RESOURCES:
            if (resource.group, resource.version) != (group, version):
                continue
            entries.append(
                {
                    "name": resource.plural,
                    "singularName": resource.singular,
                    "namespaced": resource.namespaced,
                    "kind": resource.kind,
                    "verbs": list(resource.verbs),
                    "shortNames": list(resource.short_names),
                    **({"categories": list(resource.categories)} if resource.categories else {}),
                }
            )
            for sub in resource.subresources:
                entry: Obj = {
                    "name": f"{resource.plural}/{sub}",
                    "singularName": "",
                    "namespaced": resource.namespaced,
                    "kind": resource.kind,
                    "verbs": ["get", "patch", "update"],
                }
                if sub == "scale":
                    entry.update(group="autoscaling", version="v1", kind="Scale")
                elif sub == "log":
                    entry["verbs"] = ["get"]
                entries.append(entry)
        group_version = f"{group}/{version}" if group else version
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": entries,
        }

    # routing

    async def _core(self, request: web.Request) -> web.StreamResponse:
        return await self._route(request, "", request.match_info["version"])

    async def _grouped(self, request: web.Request) -> web.StreamResponse:
        return await self._route(
            request, request.match_info["group"], request.match_info["version"]
        )

    async def _route(self, request: web.Request, group: str, version: str) -> web.StreamResponse:
        parts = [part for part in request.match_info["rest"].split("/") if part]
        served = {(r.group, r.version) for r in ALL_RESOURCES}
        if (group, version) not in served:
            raise _not_served()
        if not parts:
            if request.method != "GET":
                raise _method_not_allowed()
            return _json(self._resource_list(group, version))
        namespace: str | None = None
        if parts[0] == "namespaces" and len(parts) >= 3 and find_resource(group, version, parts[2]):
            namespace, parts = parts[1], parts[2:]
        resource = find_resource(group, version, parts[0])
        if resource is None:
            raise _not_served()
        if resource.namespaced is False and namespace is not None:
            raise _not_served()
        if len(parts) > 3 or (len(parts) == 3 and parts[2] not in resource.subresources):
            raise _not_served()
        self._record(request, resource, namespace, parts)
        if len(parts) == 1:
            return await self._collection(request, resource, namespace)
        return await self._item(
            request, resource, namespace, parts[1], parts[2] if len(parts) == 3 else None
        )

    def _record(
        self, request: web.Request, resource: ResourceType, namespace: str | None, parts: list[str]
    ) -> None:
        verb = authorizer_verb(request.method, len(parts) > 1, _bool_param(request, "watch"))
        subresource = parts[2] if len(parts) == 3 else ""
        if not resource.namespaced and resource.plural == "namespaces" and len(parts) > 1:
            namespace = parts[1]  # a namespace object is authorized within itself
        self.requests.append(
            ApiRequest(verb, resource.group, resource.plural, subresource, namespace)
        )

    # collections

    async def _collection(
        self, request: web.Request, resource: ResourceType, namespace: str | None
    ) -> web.StreamResponse:
        if request.method == "GET":
            predicate = self._predicate(request)
            if _bool_param(request, "watch"):
                return await self._watch(request, resource, namespace, predicate)
            items = self.store.list(resource, namespace, predicate)
            rv = str(self.store.resource_version)
            if _wants_table(request):
                return _table(request, resource, items, rv)
            for item in items:
                item.pop("apiVersion", None)
                item.pop("kind", None)
            return _json(
                {
                    "kind": f"{resource.kind}List",
                    "apiVersion": resource.api_version,
                    "metadata": {"resourceVersion": rv},
                    "items": items,
                }
            )
        if request.method == "POST":
            if resource.namespaced and namespace is None:
                raise _method_not_allowed()
            body = require_object(await _decode_body(request))
            self._check_kind(resource, body)
            warnings = _field_warnings(request, resource, body)
            if "status" in resource.subresources:
                body.pop("status", None)
            apply_defaults(resource, body)
            validate(resource, body)
            if resource is SERVICES:
                taken = {svc["spec"].get("clusterIP", "") for svc in self.store.list(SERVICES)}
                assign_cluster_ip(body, taken)
            created = self.store.create(resource, body, namespace, dry_run=_dry_run(request))
            return _json(created, 201, warnings)
        if request.method == "DELETE":
            predicate = self._predicate(request)
            dry_run = _dry_run(request)
            deleted = [
                self.store.delete(
                    resource,
                    item["metadata"].get("namespace", ""),
                    item["metadata"]["name"],
                    dry_run=dry_run,
                )
                for item in self.store.list(resource, namespace, predicate)
            ]
            return _json(
                {
                    "kind": f"{resource.kind}List",
                    "apiVersion": resource.api_version,
                    "metadata": {"resourceVersion": str(self.store.resource_version)},
                    "items": deleted,
                }
            )
        raise _method_not_allowed()

    @staticmethod
    def _predicate(request: web.Request) -> Any:
        labels = label_selector(request.query.get("labelSelector"))
        fields = field_selector(request.query.get("fieldSelector"))
        return lambda obj: labels(obj) and fields(obj)

    async def _watch(
        self, request: web.Request, resource: ResourceType, namespace: str | None, predicate: Any
    ) -> web.StreamResponse:
        timeout = _int_param(request, "timeoutSeconds") or DEFAULT_WATCH_TIMEOUT
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        try:
            subscription = self.store.watch(
                resource, namespace, predicate, request.query.get("resourceVersion")
            )
        except ApiError as error:
            if error.code != 410:
                raise
            await response.prepare(request)
            await response.write(
                json.dumps({"type": "ERROR", "object": error.status()}).encode() + b"\n"
            )
            await response.write_eof()
            return response
        await response.prepare(request)
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
                try:
                    event_type, obj = await asyncio.wait_for(subscription.queue.get(), remaining)
                except TimeoutError:
                    break
                line = json.dumps({"type": event_type, "object": obj}).encode() + b"\n"
                await response.write(line)
        finally:
            self.store.unwatch(subscription)
        await response.write_eof()
        return response

    # items

    async def _item(
        self,
        request: web.Request,
        resource: ResourceType,
        namespace: str | None,
        name: str,
        subresource: str | None,
    ) -> web.StreamResponse:
        ns = namespace or ""
        if subresource == "log":
            return await self._pod_log(request, ns, name)
        if subresource == "scale":
            return await self._scale(request, resource, ns, name)
        status_only = subresource == "status"
        if request.method == "GET":
            obj = self.store.get(resource, ns, name)
            if _wants_table(request):
                return _table(request, resource, [obj], obj["metadata"]["resourceVersion"])
            return _json(obj)
        if request.method == "PUT":
            body = require_object(await _decode_body(request))
            self._check_kind(resource, body)
            meta = body.get("metadata") or {}
            if meta.get("name") != name:
                raise _bad_request("the name of the object does not match the name on the URL")
            body["metadata"] = {**meta, "namespace": ns} if resource.namespaced else meta
            return self._write(request, resource, body, status_only)
        if request.method == "PATCH":
            current = self.store.get(resource, ns, name)
            patched = apply_patch(
                current,
                await request.read(),
                request.headers.get("Content-Type", "").split(";")[0].strip(),
                resource.kind,
            )
            patched.setdefault("metadata", {})
            patched["metadata"]["name"] = name
            if resource.namespaced:
                patched["metadata"]["namespace"] = ns
            if patched["metadata"].get("resourceVersion") == current["metadata"]["resourceVersion"]:
                patched["metadata"].pop("resourceVersion")
            return self._write(request, resource, patched, status_only)
        if request.method == "DELETE":
            deleted = self.store.delete(resource, ns, name, dry_run=_dry_run(request))
            if resource is PODS:
                return _json(deleted)
            return _json(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {
                        "name": name,
                        **({"group": resource.group} if resource.group else {}),
                        "kind": resource.plural,
                        "uid": deleted["metadata"]["uid"],
                    },
                }
            )
        raise _method_not_allowed()

    def _write(
        self, request: web.Request, resource: ResourceType, obj: Obj, status_only: bool
    ) -> web.Response:
        """Replace an object (PUT, or a PATCH's result), checked like a create."""
        meta = obj["metadata"]
        warnings = _field_warnings(request, resource, obj)
        if not status_only:
            old = self.store.get(resource, meta.get("namespace", ""), meta["name"])
            if resource is SERVICES:
                keep_cluster_ip(obj, old)
            apply_defaults(resource, obj)
            validate(resource, obj, old)
        updated = self.store.update(
            resource, obj, status_only=status_only, dry_run=_dry_run(request)
        )
        return _json(updated, 200, warnings)

    @staticmethod
    def _check_kind(resource: ResourceType, body: Obj) -> None:
        kind = body.get("kind")
        if kind not in (None, resource.kind):
            raise _bad_request(
                f"the API version in the data ({body.get('apiVersion')}) does not match the "
                f"expected API version ({resource.api_version})"
                if body.get("apiVersion") != resource.api_version
                else f"kind {kind} does not match the expected kind {resource.kind}"
            )

    # scale subresource

    async def _scale(
        self, request: web.Request, resource: ResourceType, namespace: str, name: str
    ) -> web.Response:
        obj = self.store.get(resource, namespace, name)
        scale = self._scale_of(obj)
        if request.method == "GET":
            return _json(scale)
        if request.method == "PUT":
            wanted = require_object(await _decode_body(request))
        elif request.method == "PATCH":
            content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
            wanted = apply_patch(scale, await request.read(), content_type, "Scale")
        else:
            raise _method_not_allowed()
        replicas = (wanted.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise ApiError(
                422,
                "Invalid",
                f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: '
                f"{replicas}: must be greater than or equal to 0",
            )
        sent_version = (wanted.get("metadata") or {}).get("resourceVersion")
        obj["spec"]["replicas"] = replicas
        if sent_version:
            obj["metadata"]["resourceVersion"] = sent_version
        updated = self.store.update(resource, obj, dry_run=_dry_run(request))
        return _json(self._scale_of(updated))

    @staticmethod
    def _scale_of(obj: Obj) -> Obj:
        selector = obj["spec"].get("selector") or {}
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                key: obj["metadata"][key]
                for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            },
            "spec": {"replicas": obj["spec"].get("replicas", 1)},
            "status": {
                "replicas": (obj.get("status") or {}).get("replicas", 0),
                "selector": selector_to_string(
                    selector.get("matchLabels"), selector.get("matchExpressions")
                ),
            },
        }

    # pod logs

    async def _pod_log(self, request: web.Request, namespace: str, name: str) -> web.StreamResponse:
        if request.method != "GET":
            raise _method_not_allowed()
        if self.logs is None:
            raise _not_served()
        options: dict[str, Any] = {
            "previous": _bool_param(request, "previous"),
            "tail_lines": _int_param(request, "tailLines"),
            "since_seconds": _int_param(request, "sinceSeconds"),
            "timestamps": _bool_param(request, "timestamps"),
        }
        container = request.query.get("container") or None
        if not _bool_param(request, "follow"):
            limit = _int_param(request, "limitBytes")  # the range's first bytes, as the kubelet
            text = self.logs.read(namespace, name, container, limit_bytes=limit, **options)
            return web.Response(text=text, content_type="text/plain")
        lines = self.logs.follow(namespace, name, container, **options)
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        async for line in lines:
            await response.write(line.encode())
        await response.write_eof()
        return response
