"""Kubernetes Events as the controllers and the kubelet record them (what `describe` shows)."""

from __future__ import annotations

import uuid
from typing import Any

from sandbox.resources import EVENTS
from sandbox.store import ObjectStore, now_rfc3339


def record_event(
    store: ObjectStore,
    involved: dict[str, Any],
    reason: str,
    message: str,
    *,
    warning: bool = False,
    component: str = "kubelet",
    host: str | None = None,
    field_path: str | None = None,
) -> None:
    """Record an event about `involved`, folding a repeat of the last one into its count.

    `field_path` names the part of the object, e.g. `spec.containers{nova}` for a container.
    """
    meta = involved["metadata"]
    namespace = meta.get("namespace") or "default"
    event_type = "Warning" if warning else "Normal"
    now = now_rfc3339()

    def is_repeat(existing: dict[str, Any]) -> bool:
        ref = existing["involvedObject"]
        return (
            ref.get("uid") == meta.get("uid")
            and ref.get("fieldPath") == field_path
            and existing["reason"] == reason
            and existing["message"] == message
            and existing["type"] == event_type
        )

    # The store filters before copying: only a repeat is copied, not every event.
    for existing in store.list(EVENTS, namespace, is_repeat):
        existing["count"] = existing.get("count", 1) + 1
        existing["lastTimestamp"] = now
        store.update(EVENTS, existing)
        return
    reference: dict[str, Any] = {
        "kind": involved["kind"],
        "namespace": namespace,
        "name": meta["name"],
        "uid": meta.get("uid"),
        "apiVersion": involved["apiVersion"],
        "resourceVersion": meta.get("resourceVersion"),
    }
    if field_path:
        reference["fieldPath"] = field_path
    source: dict[str, str] = {"component": component}
    if host:
        source["host"] = host
    store.create(
        EVENTS,
        {
            "metadata": {
                "name": f"{meta['name']}.{uuid.uuid4().hex[:16]}",
                "namespace": namespace,
            },
            "involvedObject": reference,
            "reason": reason,
            "message": message,
            "source": source,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": event_type,
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": host or "",
        },
        namespace,
    )
