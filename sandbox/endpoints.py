"""The endpoints controller: one Endpoints object per Service with a selector.

Ready pods matching the selector go into `addresses`, running but unready ones into
`notReadyAddresses` (all of them into `addresses` with `publishNotReadyAddresses`); pods without
an IP, terminating or finished are left out. Ports are the Service's ports with `targetPort`
resolved against each pod's named container ports, and subsets are grouped by port set like
the real controller's repacking. Store notifications only mark Services dirty; one task syncs.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sandbox.resources import ENDPOINTS, PODS, SERVICES
from sandbox.selectors import Predicate, label_selector, selector_to_string
from sandbox.store import ApiError, Change, ObjectStore, now_rfc3339

Obj = dict[str, Any]
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"


class EndpointsController:
    """Keeps every selector Service's Endpoints in step with its pods."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._dirty: set[tuple[str, str]] = set()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listening = False

    def start(self) -> None:
        """Sync every Service now and follow changes from here on."""
        if self._task is not None:
            raise RuntimeError("endpoints controller already started")
        if not self._listening:
            self.store.add_listener(self._on_change)
            self._listening = True
        for service in self.store.list(SERVICES):
            self._mark(service["metadata"]["namespace"], service["metadata"]["name"])
        self._task = asyncio.get_running_loop().create_task(self._run(), name="endpoints")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _mark(self, namespace: str, name: str) -> None:
        self._dirty.add((namespace, name))
        self._wakeup.set()

    def _on_change(self, change: Change) -> None:
        if self._task is None:
            return
        if change.resource == SERVICES or (
            change.resource == ENDPOINTS and change.type == "DELETED"
        ):
            meta = change.new["metadata"]
            self._mark(meta["namespace"], meta["name"])
        elif change.resource == PODS:
            namespace = change.new["metadata"]["namespace"]
            pods = [pod for pod in (change.old, change.new) if pod is not None]
            for service in self.store.list(SERVICES, namespace):
                selects = _selector(service)
                if selects is not None and any(selects(pod) for pod in pods):
                    self._mark(namespace, service["metadata"]["name"])

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            dirty, self._dirty = self._dirty, set()
            for namespace, name in sorted(dirty):
                self.sync(namespace, name)
            await asyncio.sleep(0)

    def sync(self, namespace: str, name: str) -> None:
        """Bring one Service's Endpoints up to date (or remove them with the Service)."""
        service = self.store.find(SERVICES, namespace, name)
        current = self.store.find(ENDPOINTS, namespace, name)
        if service is None:
            if current is not None:
                self._delete(namespace, name)
            return
        selects = _selector(service)
        if selects is None:
            return  # without a selector, Endpoints are managed by hand
        subsets = _subsets(service, self.store.list(PODS, namespace, selects))
        labels = dict(service["metadata"].get("labels") or {})
        if current is not None and (
            (current.get("subsets") or []) == subsets
            and current["metadata"].get("labels") == labels
        ):
            return
        endpoints = current or {"metadata": {"name": name, "namespace": namespace}}
        endpoints["metadata"]["labels"] = labels
        endpoints["metadata"].setdefault("annotations", {})[TRIGGER_TIME] = now_rfc3339()
        endpoints.pop("subsets", None)
        if subsets:
            endpoints["subsets"] = subsets
        try:
            if current is None:
                self.store.create(ENDPOINTS, endpoints, namespace)
            else:
                self.store.update(ENDPOINTS, endpoints)
        except ApiError as error:
            if error.code not in (404, 409):
                raise
            self._mark(namespace, name)  # raced with another writer: try again

    def _delete(self, namespace: str, name: str) -> None:
        try:
            self.store.delete(ENDPOINTS, namespace, name)
        except ApiError as error:
            if error.code != 404:
                raise


def _selector(service: Obj) -> Predicate | None:
    """A predicate for the Service's selector, or None when it has none."""
    selector = (service.get("spec") or {}).get("selector")
    if not selector:
        return None
    return label_selector(selector_to_string(selector))


def _subsets(service: Obj, pods: list[Obj]) -> list[Obj]:
    spec = service.get("spec") or {}
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    groups: dict[tuple[tuple[Any, ...], ...], dict[str, list[Obj]]] = {}
    for pod in pods:
        status = pod.get("status") or {}
        if (
            not status.get("podIP")
            or pod["metadata"].get("deletionTimestamp")
            or status.get("phase") in ("Succeeded", "Failed")
        ):
            continue
        ports = _ports(spec.get("ports") or [], pod)
        if ports is None:
            continue
        address: Obj = {
            "ip": status["podIP"],
            "nodeName": pod["spec"].get("nodeName"),
            "targetRef": {
                "kind": "Pod",
                "namespace": pod["metadata"]["namespace"],
                "name": pod["metadata"]["name"],
                "uid": pod["metadata"]["uid"],
            },
        }
        key = tuple(tuple(sorted(port.items())) for port in ports)
        group = groups.setdefault(key, {"addresses": [], "notReadyAddresses": []})
        ready = publish_not_ready or _ready(status)
        group["addresses" if ready else "notReadyAddresses"].append(address)
    subsets = []
    for key, group in sorted(groups.items()):
        subset: Obj = {}
        for kind in ("addresses", "notReadyAddresses"):
            if group[kind]:
                subset[kind] = sorted(group[kind], key=lambda a: _ip_key(a["ip"]))
        subset["ports"] = [dict(port) for port in key]
        subsets.append(subset)
    return subsets


def _ports(service_ports: list[Obj], pod: Obj) -> list[Obj] | None:
    """The Service's ports resolved for one pod; None when a named targetPort is missing."""
    resolved = []
    for port in service_ports:
        target = port.get("targetPort", port.get("port"))
        if isinstance(target, str) and not target.isdigit():
            named = [
                p.get("containerPort")
                for c in pod["spec"].get("containers", [])
                for p in c.get("ports") or []
                if p.get("name") == target
            ]
            if not named:
                return None
            target = named[0]
        entry: Obj = {"port": int(target), "protocol": port.get("protocol", "TCP")}
        if port.get("name"):
            entry["name"] = port["name"]
        if port.get("appProtocol"):
            entry["appProtocol"] = port["appProtocol"]
        resolved.append(entry)
    return resolved


def _ready(status: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _ip_key(ip: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in ip.split("."))
    except ValueError:
        return (0,)
