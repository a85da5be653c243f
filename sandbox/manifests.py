"""Defaulting and validation of the kinds a service's manifests carry besides its Deployment.

ServiceAccounts, Roles, RoleBindings, ConfigMaps, Secrets, PersistentVolumeClaims, Services
and Jobs, each checked the way the API server checks them before storing (422 `Invalid` with
the field's path), and defaulted as it defaults them on decode. The API server's facts relied
on here:

- Secret: `type` defaults to `Opaque`; `stringData` is write-only, merged into `data` as
  base64 (winning over `data`) and never stored; `data` values must be base64.
- ConfigMap and Secret keys: `[-._a-zA-Z0-9]+`, at most 253 characters, and a ConfigMap key
  may not be in both `data` and `binaryData`.
- Role rules need `verbs`, and rules naming `resources` need `apiGroups`. A RoleBinding's
  `roleRef` (a `Role` or `ClusterRole` of `rbac.authorization.k8s.io`) cannot change.
- PersistentVolumeClaim: `accessModes` and `resources.requests.storage` are required,
  `volumeMode` defaults to `Filesystem`, and after creation only the requests may change.
  It starts `Pending` (no provisioner binds it here).
- Service: `type` defaults to `ClusterIP`, ports to `TCP` and `targetPort` to `port`;
  ports are required except for `ExternalName`, and `clusterIP` cannot change.
- Job: a template's `restartPolicy` must be `Never` or `OnFailure`, the template cannot
  change, and pods get the `job-name` labels. There is no Job controller: a Job is stored,
  never run.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from sandbox.resources import (
    CONFIG_MAPS,
    JOBS,
    PERSISTENT_VOLUME_CLAIMS,
    RBAC,
    ROLE_BINDINGS,
    ROLES,
    SECRETS,
    SERVICES,
    ResourceType,
)
from sandbox.store import invalid

Obj = dict[str, Any]
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")


# defaults


def _default_secret(obj: Obj) -> None:
    obj.setdefault("type", "Opaque")
    plain = obj.pop("stringData", None) or {}
    if plain:
        data = obj.setdefault("data", {})
        for key, value in plain.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def _default_claim(obj: Obj) -> None:
    obj.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")
    obj.setdefault("status", {"phase": "Pending"})


def _default_service(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        if "port" in port:
            port.setdefault("targetPort", port["port"])


def _default_job(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    for key, value in (
        ("backoffLimit", 6),
        ("completions", 1),
        ("parallelism", 1),
        ("completionMode", "NonIndexed"),
        ("suspend", False),
    ):
        spec.setdefault(key, value)
    template = spec.setdefault("template", {})
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    for label in JOB_NAME_LABELS:
        labels.setdefault(label, obj.get("metadata", {}).get("name", ""))
    template.setdefault("spec", {})


def default_manifest(resource: ResourceType, obj: Obj) -> None:
    """Default `obj` in place as the API server does when it decodes one of these kinds.

    A Job's pod template spec is left to the caller's pod spec defaults.
    """
    if resource is SECRETS:
        _default_secret(obj)
    elif resource is PERSISTENT_VOLUME_CLAIMS:
        _default_claim(obj)
    elif resource is SERVICES:
        _default_service(obj)
    elif resource is JOBS:
        _default_job(obj)


# validation


def _check_keys(resource: ResourceType, name: str, field: str, data: Any) -> None:
    if data is None:
        return
    if not isinstance(data, dict):
        raise invalid(resource, name, field, "Invalid value: must be a map of strings")
    for key in data:
        if len(key) > 253 or not _CONFIG_KEY.match(key):
            raise invalid(
                resource,
                name,
                f"{field}[{key}]",
                f'Invalid value: "{key}": a valid config key must consist of alphanumeric '
                "characters, '-', '_' or '.'",
            )


def _validate_config_map(obj: Obj, name: str) -> None:
    data, binary = obj.get("data"), obj.get("binaryData")
    _check_keys(CONFIG_MAPS, name, "data", data)
    _check_keys(CONFIG_MAPS, name, "binaryData", binary)
    for key in set(data or {}) & set(binary or {}):
        raise invalid(CONFIG_MAPS, name, "data", f'Invalid value: "{key}": duplicate of key')
    for key, value in (data or {}).items():
        if not isinstance(value, str):
            raise invalid(CONFIG_MAPS, name, f"data[{key}]", "Invalid value: must be a string")


def _validate_secret(obj: Obj, name: str) -> None:
    data = obj.get("data")
    _check_keys(SECRETS, name, "data", data)
    for key, value in (data or {}).items():
        try:
            base64.b64decode(value if isinstance(value, str) else "?", validate=True)
        except (binascii.Error, ValueError):
            raise invalid(
                SECRETS, name, f"data[{key}]", "Invalid value: must be base64-encoded"
            ) from None


def _validate_role(obj: Obj, name: str) -> None:
    for index, rule in enumerate(obj.get("rules") or []):
        field = f"rules[{index}]"
        if not rule.get("verbs"):
            raise invalid(
                ROLES, name, f"{field}.verbs", "Required value: verbs must contain at least one"
            )
        if rule.get("resources") and not rule.get("apiGroups"):
            raise invalid(
                ROLES,
                name,
                f"{field}.apiGroups",
                "Required value: resource rules must supply at least one api group",
            )


def _validate_role_binding(obj: Obj, name: str, old: Obj | None) -> None:
    ref = obj.get("roleRef") or {}
    if ref.get("apiGroup") != RBAC:
        raise invalid(
            ROLE_BINDINGS, name, "roleRef.apiGroup", f'Unsupported value: "{ref.get("apiGroup")}"'
        )
    if ref.get("kind") not in ("Role", "ClusterRole"):
        kind = ref.get("kind")
        raise invalid(ROLE_BINDINGS, name, "roleRef.kind", f'Unsupported value: "{kind}"')
    if not ref.get("name"):
        raise invalid(ROLE_BINDINGS, name, "roleRef.name", "Required value")
    if old is not None and old.get("roleRef") != ref:
        raise invalid(ROLE_BINDINGS, name, "roleRef", "Invalid value: cannot change roleRef")
    for index, subject in enumerate(obj.get("subjects") or []):
        if subject.get("kind") not in ("ServiceAccount", "User", "Group"):
            raise invalid(
                ROLE_BINDINGS,
                name,
                f"subjects[{index}].kind",
                f'Unsupported value: "{subject.get("kind")}"',
            )
        if not subject.get("name"):
            raise invalid(ROLE_BINDINGS, name, f"subjects[{index}].name", "Required value")


def _validate_claim(obj: Obj, name: str, old: Obj | None) -> None:
    spec = obj.get("spec") or {}
    if not spec.get("accessModes"):
        raise invalid(PERSISTENT_VOLUME_CLAIMS, name, "spec.accessModes", "Required value")
    if not ((spec.get("resources") or {}).get("requests") or {}).get("storage"):
        raise invalid(PERSISTENT_VOLUME_CLAIMS, name, "spec.resources[storage]", "Required value")
    if old is not None:
        before = {k: v for k, v in (old.get("spec") or {}).items() if k != "resources"}
        after = {k: v for k, v in spec.items() if k != "resources"}
        if before != after:
            raise invalid(
                PERSISTENT_VOLUME_CLAIMS,
                name,
                "spec",
                "Forbidden: spec is immutable after creation except resources.requests",
            )


def _validate_service(obj: Obj, name: str, old: Obj | None) -> None:
    spec = obj.get("spec") or {}
    kind = spec.get("type", "ClusterIP")
    if kind not in SERVICE_TYPES:
        raise invalid(SERVICES, name, "spec.type", f'Unsupported value: "{kind}"')
    ports = spec.get("ports") or []
    if not ports and kind != "ExternalName":
        raise invalid(SERVICES, name, "spec.ports", "Required value")
    for index, port in enumerate(ports):
        number = port.get("port")
        if not isinstance(number, int) or not 1 <= number <= 65535:
            raise invalid(
                SERVICES,
                name,
                f"spec.ports[{index}].port",
                f"Invalid value: {number}: must be between 1 and 65535, inclusive",
            )
    if old is not None and (old.get("spec") or {}).get("clusterIP") != spec.get("clusterIP"):
        raise invalid(SERVICES, name, "spec.clusterIP", "Invalid value: field is immutable")


def _validate_job(obj: Obj, name: str, old: Obj | None) -> None:
    template = (obj.get("spec") or {}).get("template") or {}
    policy = (template.get("spec") or {}).get("restartPolicy")
    if policy not in ("Never", "OnFailure"):
        raise invalid(
            JOBS,
            name,
            "spec.template.spec.restartPolicy",
            f'Unsupported value: "{policy}": supported values: "OnFailure", "Never"',
        )
    if old is not None and (old.get("spec") or {}).get("template") != template:
        raise invalid(JOBS, name, "spec.template", "Invalid value: field is immutable")


def validate_manifest(resource: ResourceType, obj: Obj, name: str, old: Obj | None) -> None:
    """Reject an invalid object of one of these kinds with the API server's 422.

    A Job's containers are left to the caller's pod spec validation.
    """
    if resource is CONFIG_MAPS:
        _validate_config_map(obj, name)
    elif resource is SECRETS:
        _validate_secret(obj, name)
    elif resource is ROLES:
        _validate_role(obj, name)
    elif resource is ROLE_BINDINGS:
        _validate_role_binding(obj, name, old)
    elif resource is PERSISTENT_VOLUME_CLAIMS:
        _validate_claim(obj, name, old)
    elif resource is SERVICES:
        _validate_service(obj, name, old)
    elif resource is JOBS:
        _validate_job(obj, name, old)
