"""The sandbox's object store: what etcd and the API server's storage layer do for it.

One global resourceVersion, uids and creation timestamps, generation bumped only by
spec changes, optimistic concurrency (409 on a stale write), owner-reference garbage
collection, and watches that resume from a resourceVersion or answer 410 Gone.
Writes take `dry_run` (the API's `?dryRun=All`): checked and answered in full, not stored,
no resourceVersion used, no watch or listener told. All methods run on the event loop; none
of them block.
"""

from __future__ import annotations

import asyncio
import copy
import re
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox.resources import ALL_RESOURCES, NAMESPACES, ResourceType
from sandbox.selectors import Predicate

Obj = dict[str, Any]

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def now_rfc3339() -> str:
    """The current time as the API server writes timestamps."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def qualified(resource: ResourceType) -> str:
    """`deployments.apps` or, for the core group, `pods`: the name used in error messages."""
    return f"{resource.plural}.{resource.group}" if resource.group else resource.plural


class ApiError(Exception):
    """An error the API answers with a `Status` object."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        resource: ResourceType | None = None,
        name: str | None = None,
        causes: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.resource, self.name, self.causes = resource, name, causes

    def status(self) -> Obj:
        """The `Status` body a real API server sends for this error."""
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "code": self.code,
        }
        if self.reason:
            body["reason"] = self.reason
        details: Obj = {}
        if self.name is not None:
            details["name"] = self.name
        if self.resource is not None:
            if self.resource.group:
                details["group"] = self.resource.group
            details["kind"] = self.resource.plural
        if self.causes:
            details["causes"] = self.causes
        if details:
            body["details"] = details
        return body


def not_found(resource: ResourceType, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{qualified(resource)} "{name}" not found', resource=resource, name=name
    )


def conflict(resource: ResourceType, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified(resource)} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        resource=resource,
        name=name,
    )


def invalid(resource: ResourceType, name: str, field_path: str, detail: str) -> ApiError:
    return ApiError(
        422,
        "Invalid",
        f'{resource.kind} "{name}" is invalid: {field_path}: {detail}',
        resource=resource,
        name=name,
        causes=[{"reason": "FieldValueInvalid", "message": detail, "field": field_path}],
    )


def gone(resource_version: int) -> ApiError:
    return ApiError(
        410, "Expired", f"too old resource version: {resource_version} (current window start)"
    )


@dataclass
class Change:
    """One write, as watches and the history see it."""

    resource_version: int
    resource: ResourceType
    type: str  # ADDED, MODIFIED, DELETED
    old: Obj | None
    new: Obj


@dataclass(eq=False)
class Watch:
    """A live subscription to one resource type's changes."""

    resource: ResourceType
    namespace: str | None
    predicate: Predicate
    queue: asyncio.Queue[tuple[str, Obj]] = field(default_factory=asyncio.Queue)

    def offer(self, change: Change) -> None:
        """Queue the event this change means for this watch, if any."""
        if change.resource != self.resource:
            return
        namespace = change.new["metadata"].get("namespace")
        if self.namespace is not None and namespace != self.namespace:
            return
        was = change.old is not None and self.predicate(change.old)
        now = change.type != "DELETED" and self.predicate(change.new)
        if change.type == "DELETED":
            if was:
                self.queue.put_nowait(("DELETED", change.new))
        elif now and not was:
            self.queue.put_nowait(("ADDED", change.new))
        elif now and was:
            self.queue.put_nowait(("MODIFIED", change.new))
        elif was:
            self.queue.put_nowait(("DELETED", change.new))

    async def events(self) -> AsyncIterator[tuple[str, Obj]]:
        """Events as they come, forever (the caller stops on its own timeout)."""
        while True:
            yield await self.queue.get()


class ObjectStore:
    """All objects of the sandbox cluster, keyed by resource, namespace and name."""

    def __init__(self, history_size: int = 5000) -> None:
        self._objects: dict[tuple[str, str, str], Obj] = {}
        self._resource_version = 1000
        self._history: deque[Change] = deque(maxlen=history_size)
        self._watches: set[Watch] = set()
        self._listeners: list[Callable[[Change], None]] = []

    @property
    def resource_version(self) -> int:
        return self._resource_version

    def add_listener(self, listener: Callable[[Change], None]) -> None:
        """Call `listener` synchronously after every write (the controllers use this).

        The change carries the stored objects themselves: listeners must not mutate them.
        """
        self._listeners.append(listener)

    # reads

    def get(self, resource: ResourceType, namespace: str, name: str) -> Obj:
        """A copy of one object, or 404."""
        obj = self._objects.get((resource.plural, self._ns(resource, namespace), name))
        if obj is None:
            raise not_found(resource, name)
        return copy.deepcopy(obj)

    def find(self, resource: ResourceType, namespace: str, name: str) -> Obj | None:
        """A copy of one object, or None."""
        obj = self._objects.get((resource.plural, self._ns(resource, namespace), name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(
        self,
        resource: ResourceType,
        namespace: str | None = None,
        predicate: Predicate | None = None,
    ) -> list[Obj]:
        """Copies of the matching objects, sorted by namespace and name like the API server."""
        items = [
            obj
            for (plural, ns, _), obj in sorted(self._objects.items())
            if plural == resource.plural
            and (namespace is None or not resource.namespaced or ns == namespace)
            and (predicate is None or predicate(obj))
        ]
        return copy.deepcopy(items)

    # writes

    def create(
        self,
        resource: ResourceType,
        obj: Obj,
        namespace: str | None = None,
        *,
        dry_run: bool = False,
    ) -> Obj:
        """Store a new object, filling in the server-set metadata."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = meta.get("name") or ""
        if not name:
            raise invalid(
                resource, name, "metadata.name", "Required value: name or generateName is required"
            )
        if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
            raise invalid(
                resource,
                name,
                "metadata.name",
                f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower '
                "case alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character",
            )
        if resource.namespaced:
            namespace = namespace or meta.get("namespace") or "default"
            if meta.get("namespace") not in (None, namespace):
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request",
                )
            if (NAMESPACES.plural, "", namespace) not in self._objects:
                raise not_found(NAMESPACES, namespace)
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        key = (resource.plural, self._ns(resource, namespace), name)
        if key in self._objects:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{qualified(resource)} "{name}" already exists',
                resource=resource,
                name=name,
            )
        obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta.pop("deletionTimestamp", None)
        if resource.has_generation:
            meta["generation"] = 1
        if dry_run:
            meta.pop("resourceVersion", None)
            return obj
        return self._write(resource, key, None, obj)

    def update(
        self, resource: ResourceType, obj: Obj, *, status_only: bool = False, dry_run: bool = False
    ) -> Obj:
        """Replace an object (or only its status), refusing a stale resourceVersion with 409.

        A main-resource update keeps the stored status of kinds with a status subresource; a
        status update changes nothing but the status. Generation moves only when the spec does.
        """
        meta = obj.get("metadata") or {}
        name = meta.get("name") or ""
        key = (resource.plural, self._ns(resource, meta.get("namespace") or ""), name)
        current = self._objects.get(key)
        if current is None:
            raise not_found(resource, name)
        sent_version = meta.get("resourceVersion")
        if sent_version and sent_version != current["metadata"]["resourceVersion"]:
            raise conflict(resource, name)
        if status_only:
            updated = copy.deepcopy(current)
            updated["status"] = copy.deepcopy(obj.get("status", {}))
        else:
            updated = copy.deepcopy(obj)
            updated["apiVersion"], updated["kind"] = resource.api_version, resource.kind
            kept = {
                k: current["metadata"][k]
                for k in ("uid", "creationTimestamp", "namespace", "generation", "name")
                if k in current["metadata"]
            }
            updated["metadata"] = {**updated.get("metadata", {}), **kept}
            if "status" in resource.subresources:
                if "status" in current:
                    updated["status"] = copy.deepcopy(current["status"])
                else:
                    updated.pop("status", None)
            if resource.has_generation and updated.get("spec") != current.get("spec"):
                updated["metadata"]["generation"] = current["metadata"].get("generation", 0) + 1
        updated["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        if updated == current:
            return copy.deepcopy(current)
        if dry_run:
            return updated
        return self._write(resource, key, current, updated)

    def delete(
        self, resource: ResourceType, namespace: str, name: str, *, dry_run: bool = False
    ) -> Obj:
        """Remove an object and, like the garbage collector, everything it owns."""
        key = (resource.plural, self._ns(resource, namespace), name)
        current = self._objects.get(key)
        if current is None:
            raise not_found(resource, name)
        if dry_run:
            return copy.deepcopy(current)
        del self._objects[key]
        self._resource_version += 1
        gone_obj = copy.deepcopy(current)
        gone_obj["metadata"]["resourceVersion"] = str(self._resource_version)
        gone_obj["metadata"]["deletionTimestamp"] = now_rfc3339()
        self._publish(Change(self._resource_version, resource, "DELETED", current, gone_obj))
        self._collect_dependents(current["metadata"]["uid"])
        return copy.deepcopy(gone_obj)

    # watches

    def watch(
        self,
        resource: ResourceType,
        namespace: str | None,
        predicate: Predicate,
        resource_version: str | None,
    ) -> Watch:
        """Subscribe to changes after `resource_version`, or from a synthetic ADDED of all.

        A version older than the kept history answers 410 Gone, like a compacted etcd.
        """
        subscription = Watch(resource, namespace, predicate)
        if resource_version in (None, "", "0"):
            for obj in self.list(resource, namespace, predicate):
                subscription.queue.put_nowait(("ADDED", obj))
        else:
            try:
                since = int(resource_version)
            except ValueError as error:
                raise ApiError(
                    400, "BadRequest", f"invalid resource version: {resource_version!r}"
                ) from error
            oldest = self._history[0].resource_version if self._history else self._resource_version
            if since < oldest - 1 and since < self._resource_version:
                raise gone(since)
            for change in self._history:
                if change.resource_version > since:
                    subscription.offer(change)
        self._watches.add(subscription)
        return subscription

    def unwatch(self, subscription: Watch) -> None:
        self._watches.discard(subscription)

    def compact(self) -> None:
        """Forget the change history, as etcd compaction does (old watches then get 410)."""
        self._history.clear()

    # internals

    @staticmethod
    def _ns(resource: ResourceType, namespace: str | None) -> str:
        return (namespace or "") if resource.namespaced else ""

    def _write(
        self, resource: ResourceType, key: tuple[str, str, str], old: Obj | None, new: Obj
    ) -> Obj:
        self._resource_version += 1
        new["metadata"]["resourceVersion"] = str(self._resource_version)
        self._objects[key] = new
        self._publish(
            Change(self._resource_version, resource, "MODIFIED" if old else "ADDED", old, new)
        )
        return copy.deepcopy(new)

    def _publish(self, change: Change) -> None:
        self._history.append(change)
        for subscription in list(self._watches):
            subscription.offer(change)
        for listener in self._listeners:
            listener(change)

    def _collect_dependents(self, owner_uid: str) -> None:
        by_plural = {resource.plural: resource for resource in ALL_RESOURCES}
        for (plural, namespace, name), obj in list(self._objects.items()):
            owners = obj["metadata"].get("ownerReferences") or []
            owned = any(owner.get("uid") == owner_uid for owner in owners)
            if owned and (plural, namespace, name) in self._objects:
                self.delete(by_plural[plural], namespace, name)
