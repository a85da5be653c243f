"""PATCH bodies applied to stored objects the way the Kubernetes API server applies them.

`apply_patch` picks the patch type from the Content-Type: RFC 6902 JSON patch, RFC 7386 JSON
merge patch, or Kubernetes strategic merge patch. Failures raise `PatchError` with the HTTP
code, `Status` reason and message the real API server answers with.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

import jsonpatch
import jsonpointer

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
SUPPORTED_PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)
MAX_JSON_PATCH_OPERATIONS = 10000
REJECTED = "the server rejected our request due to an error in our request"

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_DELETE_FROM_LIST = "$deleteFromPrimitiveList"
_SET_ORDER = "$setElementOrder"

# Strategic merge patch metadata: the lists whose Go field carries `patchStrategy:"merge"`,
# keyed by their path in the object (list items are transparent), valued by `patchMergeKey`
# ("" for lists of scalars merged as sets). Every other list is replaced; maps merge.
_OBJECT_META = {"finalizers": "", "ownerReferences": "uid"}
_CONTAINER = {
    "ports": "containerPort",
    "env": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
}
_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
_POD_SPEC = {
    **dict.fromkeys(_CONTAINER_LISTS, "name"),
    **{f"{lst}.{field}": key for lst in _CONTAINER_LISTS for field, key in _CONTAINER.items()},
    "volumes": "name",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "schedulingGates": "name",
    "resourceClaims": "name",
}
_POD_STATUS = {
    "conditions": "type",
    "podIPs": "ip",
    "hostIPs": "ip",
    "resourceClaimStatuses": "name",
}


def _under(prefix: str, table: dict[str, str]) -> dict[str, str]:
    """`table` with its paths moved under `prefix`."""
    return {f"{prefix}.{path}": key for path, key in table.items()}


_POD_TEMPLATE = {**_under("metadata", _OBJECT_META), **_under("spec", _POD_SPEC)}
_WORKLOAD = {**_under("spec.template", _POD_TEMPLATE), "status.conditions": "type"}
_MERGE_KEYS_BY_KIND: dict[str, dict[str, str]] = {
    "Pod": {**_under("spec", _POD_SPEC), **_under("status", _POD_STATUS)},
    "PodTemplate": _under("template", _POD_TEMPLATE),
    "Deployment": _WORKLOAD,
    "ReplicaSet": _WORKLOAD,
    "StatefulSet": _WORKLOAD,
    "DaemonSet": _WORKLOAD,
    "ReplicationController": _WORKLOAD,
    "Job": _WORKLOAD,
    "CronJob": {
        **_under("spec.jobTemplate.metadata", _OBJECT_META),
        **_under("spec.jobTemplate.spec.template", _POD_TEMPLATE),
    },
    "Service": {"spec.ports": "port", "status.conditions": "type"},
    "Node": {"spec.podCIDRs": "", "status.conditions": "type", "status.addresses": "type"},
    "Namespace": {"status.conditions": "type"},
}


@cache
def _merge_keys(kind: str) -> dict[str, str]:
    """Path -> merge key for every merging list of `kind` (just metadata for unknown kinds)."""
    return {**_under("metadata", _OBJECT_META), **_MERGE_KEYS_BY_KIND.get(kind, {})}


class PatchError(Exception):
    """A patch the API server refuses: HTTP code, `Status` reason ("" where it gives none)."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message


def apply_patch(
    obj: dict[str, Any], patch_body: bytes | str, content_type: str, kind: str
) -> dict[str, Any]:
    """`obj` with the PATCH body applied, as a new object; `obj` itself is left untouched."""
    media_type = content_type.split(";", 1)[0].strip()
    if media_type not in SUPPORTED_PATCH_TYPES:
        raise PatchError(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: "
            + ", ".join(SUPPORTED_PATCH_TYPES),
        )
    text = patch_body.decode("utf-8", "replace") if isinstance(patch_body, bytes) else patch_body
    target = copy.deepcopy(obj)
    if media_type == JSON_PATCH:
        return _apply_json_patch(target, text)
    if media_type == MERGE_PATCH:
        return _apply_merge_patch(target, text)
    return _apply_strategic_merge_patch(target, text, kind)


# JSON patch and JSON merge patch


def _apply_json_patch(target: dict[str, Any], text: str) -> dict[str, Any]:
    """RFC 6902, checked first the way the API server decodes `[]jsonPatchOp`."""
    operations = _decode(text, "error decoding patch: ")
    if operations is None:
        return target
    if not isinstance(operations, list):
        raise _cannot_unmarshal(operations, "[]handlers.jsonPatchOp", "error decoding patch: ")
    for operation in operations:
        if operation is not None and not isinstance(operation, dict):
            raise _cannot_unmarshal(operation, "handlers.jsonPatchOp", "error decoding patch: ")
        for field in ("op", "path", "from"):
            value = (operation or {}).get(field)
            if value is not None and not isinstance(value, str):
                raise _bad_request(
                    f"error decoding patch: json: cannot unmarshal {_json_type(value)} into Go "
                    f"struct field jsonPatchOp.{field} of type string"
                )
    if len(operations) > MAX_JSON_PATCH_OPERATIONS:
        raise PatchError(
            413,
            "RequestEntityTooLarge",
            "Request entity too large: The allowed maximum operations in a JSON patch is "
            f"{MAX_JSON_PATCH_OPERATIONS}, got {len(operations)}",
        )
    try:
        result = jsonpatch.JsonPatch([op or {} for op in operations]).apply(target, in_place=True)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise PatchError(422, "Invalid", REJECTED) from exc
    if not isinstance(result, dict):
        raise PatchError(422, "Invalid", REJECTED)
    return result


def _apply_merge_patch(target: dict[str, Any], text: str) -> dict[str, Any]:
    """RFC 7386 with the API server's decoding errors."""
    patch = _decode(text, "error decoding patch: ")
    if patch is None:
        raise PatchError(500, "", "Invalid JSON Patch")
    if not isinstance(patch, dict):
        raise _cannot_unmarshal(patch, "map[string]interface {}", "error decoding patch: ")
    return _merge(target, patch)


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


# Strategic merge patch


def _apply_strategic_merge_patch(target: dict[str, Any], text: str, kind: str) -> dict[str, Any]:
    """Strategic merge patch with `kind`'s merge keys; a `null` body changes nothing."""
    patch = _decode(text, "")
    if patch is None:
        return target
    if not isinstance(patch, dict):
        raise _cannot_unmarshal(patch, "map[string]interface {}", "")
    return _smp_map(target, patch, "", _merge_keys(kind))


def _smp_value(current: Any, patch: Any, path: str, keys: dict[str, str]) -> Any:
    """`patch` merged into `current` (None when absent); directives are consumed, never kept."""
    if isinstance(patch, dict):
        return _smp_map(current if isinstance(current, dict) else None, patch, path, keys)
    if isinstance(patch, list):
        return _smp_list(current if isinstance(current, list) else [], patch, path, keys)
    return patch


def _smp_map(
    current: dict[str, Any] | None, patch: dict[str, Any], path: str, keys: dict[str, str]
) -> dict[str, Any]:
    """`patch` merged into a copy of `current`: `$patch`, `$retainKeys`, then field by field."""
    if _DIRECTIVE in patch:
        directive = patch[_DIRECTIVE]
        if directive == "replace":
            body = {key: value for key, value in patch.items() if key != _DIRECTIVE}
            return _smp_map(None, body, path, keys)
        if directive == "delete":
            return {}
        raise _internal(f"unknown patch type: {_go(directive)} in map: {_go(patch)}")
    result = dict(current or {})
    if _RETAIN_KEYS in patch:
        _retain_keys(result, patch)
    fields: dict[str, None] = {}
    for key in patch:
        if key.startswith((_SET_ORDER, _DELETE_FROM_LIST)):
            prefix, _, field = key.partition("/")
            if prefix not in (_SET_ORDER, _DELETE_FROM_LIST) or not field:
                raise _bad_request(_format_error(key))
            fields[field] = None
        elif not key.startswith("$"):
            fields[key] = None
    for field in fields:
        _smp_field(result, patch, field, f"{path}.{field}" if path else field, keys)
    return result


def _smp_field(
    result: dict[str, Any], patch: dict[str, Any], field: str, path: str, keys: dict[str, str]
) -> None:
    """Apply to `result[field]` its patch value, deletion list and element order, in that order."""
    if field in patch and patch[field] is None:
        result.pop(field, None)
        return
    delete_key = f"{_DELETE_FROM_LIST}/{field}"
    if delete_key in patch:
        deletions = patch[delete_key]
        if not isinstance(deletions, list):
            raise _bad_request(_format_error(_DELETE_FROM_LIST))
        if isinstance(result.get(field), list):
            result[field] = [item for item in result[field] if item not in deletions]
    server = result.get(field)
    if field in patch:
        result[field] = _smp_value(server, patch[field], path, keys)
    order_key = f"{_SET_ORDER}/{field}"
    if order_key not in patch:
        return
    order, merge_key = patch[order_key], keys.get(path, "")
    patch_list = patch.get(field, [])
    if not isinstance(order, list) or not isinstance(patch_list, list):
        raise _bad_request(_format_error(_SET_ORDER))
    _check_order(patch_list, order, merge_key)
    if isinstance(result.get(field), list):
        server_list = server if isinstance(server, list) else []
        result[field] = _ordered(result[field], order, server_list, merge_key)


def _smp_list(current: list, patch: list, path: str, keys: dict[str, str]) -> list:
    """Merged by merge key (or as a set of scalars) where the field merges, else replaced."""
    merge_key = keys.get(path)
    if merge_key is None:
        return [_smp_value(None, item, path, keys) for item in patch]
    if not current and not patch:
        return []
    types = {_json_type(item) for item in [*current, *patch]}
    if "array" in types:
        raise PatchError(422, "Invalid", REJECTED)
    if len(types) > 1:
        raise _internal(f"list element types are not identical: {_go([current, patch])}")
    if types != {"object"}:
        merged = []
        for item in [*current, *patch]:
            if item not in merged:
                merged.append(item)
        return _ordered(merged, patch, current, "")
    if not merge_key:
        raise _internal("cannot merge lists without merge key for type string")
    merged, items = list(current), []
    replace = False
    for item in patch:
        if _DIRECTIVE not in item:
            items.append(item)
        elif item[_DIRECTIVE] == "delete":
            value = _identity(item, merge_key)
            merged = [m for m in merged if not (merge_key in m and m[merge_key] == value)]
        elif item[_DIRECTIVE] == "replace":
            replace = True
        elif item[_DIRECTIVE] == "merge":
            raise _internal("merging lists cannot yet be specified in the patch")
        else:
            raise _internal(f"unknown patch type: {_go(item[_DIRECTIVE])} in map: {_go(item)}")
    if replace:
        merged, items = [_smp_map(None, item, path, keys) for item in items], []
    server = list(merged)
    for item in items:
        value = _identity(item, merge_key)
        index = next(
            (i for i, m in enumerate(merged) if merge_key in m and m[merge_key] == value), None
        )
        if index is None:
            merged.append(_smp_map(None, item, path, keys))
        else:
            merged[index] = _smp_map(merged[index], item, path, keys)
    return _ordered(merged, items, server, merge_key)


def _retain_keys(result: dict[str, Any], patch: dict[str, Any]) -> None:
    """`$retainKeys`: drop every key of `result` not listed; the patch may set only listed keys."""
    retain = patch[_RETAIN_KEYS]
    if not isinstance(retain, list):
        raise _bad_request("invalid patch format of retainKeys")
    for key, value in patch.items():
        if value is None or key.startswith((_SET_ORDER, _DELETE_FROM_LIST, _RETAIN_KEYS)):
            continue
        if key not in retain:
            raise _bad_request("invalid patch format of retainKeys")
    for key in [key for key in result if key not in retain]:
        del result[key]


def _check_order(patch_list: list, order: list, merge_key: str) -> None:
    """The patch list's items must appear in `$setElementOrder` in the same relative order."""
    wanted = (_identity(item, merge_key) for item in order)
    changed = [item for item in patch_list if not (isinstance(item, dict) and _DIRECTIVE in item)]
    if not all(any(_identity(item, merge_key) == w for w in wanted) for item in changed):
        raise _internal(
            f"The order in patch list:\n{_go(patch_list)}\n doesn't match "
            f"{_SET_ORDER} list:\n{_go(order)}\n"
        )


def _ordered(merged: list, order: list, server: list, merge_key: str) -> list:
    """Items named in `order` in that order, the others in `server` order, interleaved.

    The API server's rule: a server-only item goes before the next ordered item only when both
    are in `server` and it came first there, so items new to the list lead.
    """
    order_ids = [_identity(item, merge_key) for item in order]
    server_ids = [_identity(item, merge_key) for item in server]

    def position(ids: list, item: Any) -> int | None:
        identity = _identity(item, merge_key)
        return next((i for i, other in enumerate(ids) if other == identity), None)

    def rank(ids: list, item: Any) -> int:
        found = position(ids, item)
        return len(ids) if found is None else found

    named = sorted(
        (i for i in merged if position(order_ids, i) is not None), key=lambda i: rank(order_ids, i)
    )
    rest = sorted(
        (i for i in merged if position(order_ids, i) is None), key=lambda i: rank(server_ids, i)
    )
    result: list = []
    while named and rest:
        left, right = position(server_ids, rest[0]), position(server_ids, named[0])
        if left is not None and right is not None and left < right:
            result.append(rest.pop(0))
        else:
            result.append(named.pop(0))
    return result + rest + named


def _identity(item: Any, merge_key: str) -> Any:
    """The value that identifies a list item: its merge key's value, or the scalar itself."""
    if not merge_key:
        return item
    if not isinstance(item, dict) or merge_key not in item:
        raise _internal(f"map: {_go(item)} does not contain declared merge key: {merge_key}")
    return item[merge_key]


# Errors and Go's wording


def _bad_request(message: str) -> PatchError:
    """A 400 BadRequest."""
    return PatchError(400, "BadRequest", message)


def _internal(message: str) -> PatchError:
    """An error the API server passes through unconverted: 500 with no reason."""
    return PatchError(500, "", message)


def _format_error(key: str) -> str:
    """The 400 message for a malformed `$deleteFromPrimitiveList` or `$setElementOrder`."""
    what = "primitive list" if key.startswith(_DELETE_FROM_LIST) else "setElementOrder list"
    return f"invalid patch format of {what}"


def _cannot_unmarshal(value: Any, go_type: str, prefix: str) -> PatchError:
    """A 400 for a body of the wrong JSON type, in Go's decoder's words."""
    return _bad_request(
        f"{prefix}json: cannot unmarshal {_json_type(value)} into Go value of type {go_type}"
    )


def _json_type(value: Any) -> str:
    """The JSON type name Go's decoder uses in its errors."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "null" if value is None else "number"


def _go(value: Any) -> str:
    """`value` formatted like Go's `%v` of decoded JSON."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go(item) for item in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)


class _SyntaxError(ValueError):
    """Malformed JSON, described in Go's encoding/json words."""


def _decode(text: str, prefix: str) -> Any:
    """Parse the patch body; malformed JSON is a 400 like the API server's."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise _bad_request(prefix + _go_syntax_error(exc)) from exc
    except _SyntaxError as exc:
        raise _bad_request(f"{prefix}{exc}") from exc


def _reject_constant(name: str) -> Any:
    """Go's JSON has no NaN or Infinity."""
    context = "in numeric literal" if name.startswith("-") else "looking for beginning of value"
    raise _SyntaxError(f"invalid character {_quote(name.lstrip('-')[0])} {context}")


# Python's JSON error messages -> where Go's decoder says the bad character was.
_GO_SYNTAX_CONTEXT = {
    "Expecting property name enclosed in double quotes": (
        "looking for beginning of object key string"
    ),
    "Expecting ':' delimiter": "after object key",
    "Extra data": "after top-level value",
    "Invalid control character at": "in string literal",
}


def _go_syntax_error(exc: json.JSONDecodeError) -> str:
    """The message Go's encoding/json gives for the syntax error Python found."""
    doc, pos, msg = exc.doc, exc.pos, exc.msg
    if pos >= len(doc) or msg.startswith("Unterminated string"):
        return "unexpected end of JSON input"
    if msg.startswith("Invalid \\uXXXX"):
        bad = next((c for c in doc[pos + 1 : pos + 5] if c not in "0123456789abcdefABCDEF"), "")
        return f"invalid character {_quote(bad)} in \\u hexadecimal character escape"
    if msg.startswith("Invalid \\escape"):
        return f"invalid character {_quote(doc[pos + 1 : pos + 2])} in string escape code"
    if msg.startswith("Expecting ',' delimiter"):
        context = (
            "after object key:value pair" if _innermost(doc, pos) == "{" else "after array element"
        )
    else:
        context = _GO_SYNTAX_CONTEXT.get(msg, "looking for beginning of value")
    return f"invalid character {_quote(doc[pos])} {context}"


def _innermost(doc: str, pos: int) -> str:
    """The bracket (`{` or `[`) enclosing `pos` in the JSON text `doc`."""
    stack: list[str] = []
    in_string = escaped = False
    for char in doc[:pos]:
        if in_string:
            escaped, in_string = (not escaped and char == "\\"), (escaped or char != '"')
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append(char)
        elif char in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else ""


def _quote(char: str) -> str:
    """A character quoted as Go's JSON errors quote it."""
    if char == "'":
        return "'\\''"
    if char == '"':
        return "'\"'"
    return "'" + json.dumps(char, ensure_ascii=False)[1:-1] + "'"
