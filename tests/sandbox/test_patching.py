"""The sandbox's PATCH semantics, checked with the bodies kubectl and the Python client send."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from sandbox.patching import REJECTED, PatchError, apply_patch

SMP = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
REVISION = "deployment.kubernetes.io/revision"


def deployment() -> dict[str, Any]:
    """A stored two-container Deployment, as the API server keeps it."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "x",
            "namespace": "default",
            "uid": "d-1",
            "generation": 2,
            "resourceVersion": "41",
            "annotations": {REVISION: "2", "team": "web"},
            "finalizers": ["a.example/one"],
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "x"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": {
                "metadata": {
                    "labels": {"app": "x"},
                    "annotations": {"prometheus.io/scrape": "true"},
                },
                "spec": {
                    "nodeSelector": {"disk": "ssd", "arch": "arm64"},
                    "tolerations": [{"key": "a", "operator": "Exists"}],
                    "containers": [
                        {
                            "name": "x",
                            "image": "reg/x:v1",
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            "env": [
                                {"name": "MODE", "value": "prod"},
                                {"name": "LEVEL", "value": "info"},
                            ],
                        },
                        {"name": "proxy", "image": "reg/proxy:v1"},
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                },
            },
        },
        "status": {
            "observedGeneration": 2,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
            ],
        },
    }


def smp(obj: dict[str, Any], patch: Any, kind: str = "Deployment") -> dict[str, Any]:
    return apply_patch(obj, json.dumps(patch).encode(), SMP, kind)


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


def containers(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in pod_spec(obj)["containers"]}


def directive_keys(value: Any) -> list[str]:
    """Every `$`-prefixed key anywhere in `value`."""
    if isinstance(value, dict):
        own = [k for k in value if k.startswith("$")]
        return own + [k for v in value.values() for k in directive_keys(v)]
    if isinstance(value, list):
        return [k for v in value for k in directive_keys(v)]
    return []


def rejected(obj: dict[str, Any], body: str | bytes, content_type: str) -> PatchError:
    with pytest.raises(PatchError) as caught:
        apply_patch(obj, body, content_type, "Deployment")
    return caught.value


# kubectl's and the Python client's own bodies


def test_kubectl_set_image_changes_one_container_and_keeps_order() -> None:
    original = deployment()
    # `kubectl set image deployment/x x=reg/x:v2`: a two-way strategic merge patch, as sent.
    body = (
        b'{"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"x"},'
        b'{"name":"proxy"}],"containers":[{"image":"reg/x:v2","name":"x"}]}}}}'
    )
    patched = apply_patch(original, body, SMP, "Deployment")

    assert [c["name"] for c in pod_spec(patched)["containers"]] == ["x", "proxy"]
    assert containers(patched)["x"]["image"] == "reg/x:v2"
    assert containers(patched)["proxy"] == {"name": "proxy", "image": "reg/proxy:v1"}
    assert containers(patched)["x"]["env"] == containers(original)["x"]["env"]
    assert containers(patched)["x"]["ports"] == containers(original)["x"]["ports"]
    assert directive_keys(patched) == []
    expected = deployment()
    expected["spec"]["template"]["spec"]["containers"][0]["image"] = "reg/x:v2"
    assert patched == expected


def test_set_image_on_the_second_container() -> None:
    body = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "x"}, {"name": "proxy"}],
                    "containers": [{"image": "reg/proxy:v2", "name": "proxy"}],
                }
            }
        }
    }
    patched = smp(deployment(), body)
    assert [(c["name"], c["image"]) for c in pod_spec(patched)["containers"]] == [
        ("x", "reg/x:v1"),
        ("proxy", "reg/proxy:v2"),
    ]


def test_set_element_order_reorders_like_kubectl_apply() -> None:
    body = {
        "spec": {
            "template": {
                "spec": {"$setElementOrder/containers": [{"name": "proxy"}, {"name": "x"}]}
            }
        }
    }
    patched = smp(deployment(), body)
    assert [c["name"] for c in pod_spec(patched)["containers"]] == ["proxy", "x"]
    assert containers(patched) == containers(deployment())
    assert directive_keys(patched) == []


def test_kubectl_rollout_restart_adds_template_annotation_and_keeps_others() -> None:
    body = {
        "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: "2025-05-01T10:00:00Z"}}}}
    }
    patched = smp(deployment(), body)
    assert patched["spec"]["template"]["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        RESTARTED_AT: "2025-05-01T10:00:00Z",
    }
    assert patched["metadata"]["annotations"] == deployment()["metadata"]["annotations"]
    assert patched["spec"]["template"]["spec"] == pod_spec(deployment())


def test_rollout_restart_on_a_template_without_annotations() -> None:
    original = deployment()
    del original["spec"]["template"]["metadata"]["annotations"]
    body = {
        "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: "2025-05-01T10:00:00Z"}}}}
    }
    patched = smp(original, body)
    assert patched["spec"]["template"]["metadata"] == {
        "labels": {"app": "x"},
        "annotations": {RESTARTED_AT: "2025-05-01T10:00:00Z"},
    }


def test_kubectl_scale_merge_patch() -> None:
    patched = apply_patch(deployment(), b'{"spec":{"replicas":3}}', MERGE, "Deployment")
    expected = deployment()
    expected["spec"]["replicas"] = 3
    assert patched == expected


def test_scale_subresource_merge_patch() -> None:
    scale = {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": "x", "namespace": "default", "resourceVersion": "41"},
        "spec": {"replicas": 2},
        "status": {"replicas": 2, "selector": "app=x"},
    }
    patched = apply_patch(scale, '{"spec":{"replicas":5}}', MERGE, "Scale")
    assert patched["spec"] == {"replicas": 5}
    assert patched["status"] == scale["status"]


def test_python_client_rollout_undo_json_patch() -> None:
    template = {
        "metadata": {"labels": {"app": "x"}},
        "spec": {"containers": [{"name": "x", "image": "reg/x:v0"}]},
    }
    annotations = {REVISION: "2", "kubernetes.io/change-cause": "deploy v0"}
    body = json.dumps(
        [
            {"op": "replace", "path": "/spec/template", "value": template},
            {"op": "replace", "path": "/metadata/annotations", "value": annotations},
        ]
    )
    patched = apply_patch(deployment(), body, JSON_PATCH, "Deployment")
    assert patched["spec"]["template"] == template
    assert patched["metadata"]["annotations"] == annotations
    assert patched["spec"]["replicas"] == 2
    assert patched["metadata"]["finalizers"] == ["a.example/one"]


# strategic merge patch semantics


def test_patch_delete_removes_a_container() -> None:
    body = {"spec": {"template": {"spec": {"containers": [{"name": "proxy", "$patch": "delete"}]}}}}
    patched = smp(deployment(), body)
    assert [c["name"] for c in pod_spec(patched)["containers"]] == ["x"]
    assert directive_keys(patched) == []


def test_patch_replace_on_a_map() -> None:
    body = {"spec": {"template": {"spec": {"nodeSelector": {"$patch": "replace", "zone": "a"}}}}}
    patched = smp(deployment(), body)
    assert pod_spec(patched)["nodeSelector"] == {"zone": "a"}


def test_patch_replace_on_a_list() -> None:
    body = {
        "spec": {
            "template": {
                "spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "o:1"}]}
            }
        }
    }
    patched = smp(deployment(), body)
    assert pod_spec(patched)["containers"] == [{"name": "only", "image": "o:1"}]


def test_patch_delete_on_a_map_empties_it() -> None:
    body = {"spec": {"template": {"spec": {"nodeSelector": {"$patch": "delete"}}}}}
    assert pod_spec(smp(deployment(), body))["nodeSelector"] == {}


def test_patch_merge_directive_is_refused_like_the_api_server() -> None:
    in_list = {"spec": {"template": {"spec": {"containers": [{"$patch": "merge"}]}}}}
    with pytest.raises(PatchError) as caught:
        smp(deployment(), in_list)
    assert caught.value.code == 500
    assert caught.value.message == "merging lists cannot yet be specified in the patch"
    with pytest.raises(PatchError) as caught:
        smp(deployment(), {"metadata": {"labels": {"$patch": "merge"}}})
    assert caught.value.message == "unknown patch type: merge in map: map[$patch:merge]"


def test_env_is_merged_by_name() -> None:
    body = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "x", "env": [{"name": "LEVEL", "value": "debug"}]},
                    ]
                }
            }
        }
    }
    patched = smp(deployment(), body)
    assert containers(patched)["x"]["env"] == [
        {"name": "MODE", "value": "prod"},
        {"name": "LEVEL", "value": "debug"},
    ]
    assert containers(patched)["x"]["image"] == "reg/x:v1"


def test_new_list_items_lead_as_on_the_api_server() -> None:
    # The API server puts items new to a merging list before the server-only ones.
    body = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "redis", "image": "redis"},
                        {"name": "x", "env": [{"name": "NEW", "value": "1"}]},
                    ]
                }
            }
        }
    }
    patched = smp(deployment(), body)
    assert [c["name"] for c in pod_spec(patched)["containers"]] == ["redis", "x", "proxy"]
    assert [e["name"] for e in containers(patched)["x"]["env"]] == ["NEW", "MODE", "LEVEL"]


def test_patched_items_keep_the_patch_order_among_server_items() -> None:
    body = {
        "spec": {
            "template": {"spec": {"containers": [{"name": "x", "image": "x:2"}, {"name": "redis"}]}}
        }
    }
    patched = smp(deployment(), body)
    assert [c["name"] for c in pod_spec(patched)["containers"]] == ["x", "redis", "proxy"]


def test_container_ports_merge_by_container_port() -> None:
    port = {"containerPort": 8080, "name": "http"}
    body = {"spec": {"template": {"spec": {"containers": [{"name": "x", "ports": [port]}]}}}}
    patched = smp(deployment(), body)
    assert containers(patched)["x"]["ports"] == [
        {"containerPort": 8080, "protocol": "TCP", "name": "http"}
    ]


def test_lists_without_merge_key_are_replaced() -> None:
    tolerations = [{"key": "b", "operator": "Equal", "value": "1"}]
    body = {"spec": {"template": {"spec": {"tolerations": tolerations}}}}
    assert pod_spec(smp(deployment(), body))["tolerations"] == tolerations

    def set_args(*args: str) -> dict[str, Any]:
        return {"spec": {"template": {"spec": {"containers": [{"name": "x", "args": list(args)}]}}}}

    patched = smp(smp(deployment(), set_args("-v", "--color")), set_args("-q"))
    assert containers(patched)["x"]["args"] == ["-q"]


def test_an_empty_merge_list_changes_nothing() -> None:
    body = {"spec": {"template": {"spec": {"containers": []}}}}
    assert smp(deployment(), body) == deployment()


def test_null_deletes_an_annotation() -> None:
    patched = smp(deployment(), {"metadata": {"annotations": {"team": None, "absent": None}}})
    assert patched["metadata"]["annotations"] == {REVISION: "2"}


def test_nulls_in_new_subtrees_are_dropped() -> None:
    body = {
        "spec": {"template": {"spec": {"securityContext": {"runAsUser": 1000, "fsGroup": None}}}}
    }
    assert pod_spec(smp(deployment(), body))["securityContext"] == {"runAsUser": 1000}


def test_finalizers_merge_as_a_set_and_delete_from_primitive_list() -> None:
    added = smp(deployment(), {"metadata": {"finalizers": ["a.example/one", "b.example/two"]}})
    assert added["metadata"]["finalizers"] == ["a.example/one", "b.example/two"]
    removed = smp(added, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.example/one"]}})
    assert removed["metadata"]["finalizers"] == ["b.example/two"]
    assert directive_keys(removed) == []


def test_retain_keys_switches_strategy_to_recreate() -> None:
    # `kubectl apply` moving a Deployment from RollingUpdate to Recreate.
    body = {
        "spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": None, "type": "Recreate"}}
    }
    assert smp(deployment(), body)["spec"]["strategy"] == {"type": "Recreate"}
    keep_only_type = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    assert smp(deployment(), keep_only_type)["spec"]["strategy"] == {"type": "Recreate"}


def test_retain_keys_must_list_every_patched_key() -> None:
    body = {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 1}}}}
    with pytest.raises(PatchError) as caught:
        smp(deployment(), body)
    assert (caught.value.code, caught.value.message) == (400, "invalid patch format of retainKeys")


def test_status_conditions_merge_by_type() -> None:
    condition = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
    patched = smp(deployment(), {"status": {"conditions": [condition]}})
    assert patched["status"]["conditions"] == [deployment()["status"]["conditions"][0], condition]


def test_owner_references_merge_by_uid() -> None:
    rs = {
        "metadata": {
            "name": "x-1",
            "ownerReferences": [{"uid": "d-1", "kind": "Deployment", "name": "x"}],
        }
    }
    patched = smp(
        rs, {"metadata": {"ownerReferences": [{"uid": "d-1", "controller": True}]}}, "ReplicaSet"
    )
    assert patched["metadata"]["ownerReferences"] == [
        {"uid": "d-1", "kind": "Deployment", "name": "x", "controller": True}
    ]


def test_pod_and_service_lists_follow_their_kind() -> None:
    pod = {"spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}
    patched = smp(pod, {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}, "Pod")
    assert patched["spec"]["containers"] == [
        {"name": "a", "image": "a:1"},
        {"name": "b", "image": "b:2"},
    ]
    service = {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}
    patched = smp(service, {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}, "Service")
    assert patched["spec"]["ports"] == [{"port": 80, "targetPort": 9090}, {"port": 443}]
    # A kind without patch metadata replaces lists.
    other = {"spec": {"containers": [{"name": "a"}]}}
    assert smp(other, {"spec": {"containers": [{"name": "b"}]}}, "Widget")["spec"][
        "containers"
    ] == [{"name": "b"}]


def test_missing_merge_key_is_an_error() -> None:
    body = {"spec": {"template": {"spec": {"containers": [{"image": "nginx"}]}}}}
    with pytest.raises(PatchError) as caught:
        smp(deployment(), body)
    assert caught.value.code == 500
    assert caught.value.message == "map: map[image:nginx] does not contain declared merge key: name"


def test_set_element_order_must_agree_with_the_patch_list() -> None:
    body = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "proxy"}],
                    "containers": [{"name": "x", "image": "reg/x:v2"}],
                }
            }
        }
    }
    with pytest.raises(PatchError) as caught:
        smp(deployment(), body)
    assert caught.value.code == 500
    assert "doesn't match $setElementOrder list" in caught.value.message


def test_unknown_directive_keys_are_never_stored() -> None:
    body = {
        "metadata": {
            "labels": {"tier": "web"},
            "$bogus": 1,
            "$setElementOrder/finalizers": ["a.example/one"],
        }
    }
    patched = smp(deployment(), body)
    assert patched["metadata"]["labels"] == {"tier": "web"}
    assert directive_keys(patched) == []


# JSON merge patch


def test_merge_patch_semantics() -> None:
    body = {
        "metadata": {"annotations": {"team": None, "owner": "ops"}},
        "spec": {
            "strategy": {"rollingUpdate": {"maxSurge": 1}},
            "template": {"spec": {"containers": [{"name": "only", "image": "o:1"}]}},
        },
        "extra": {"kept": "yes", "dropped": None},
    }
    patched = apply_patch(deployment(), json.dumps(body), MERGE, "Deployment")
    assert patched["metadata"]["annotations"] == {REVISION: "2", "owner": "ops"}
    assert patched["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"},
    }
    assert pod_spec(patched)["containers"] == [{"name": "only", "image": "o:1"}]
    assert pod_spec(patched)["volumes"] == pod_spec(deployment())["volumes"]
    assert patched["extra"] == {"kept": "yes"}


def test_merge_patch_does_not_interpret_directives() -> None:
    body = {"spec": {"template": {"spec": {"nodeSelector": {"$patch": "replace"}}}}}
    patched = apply_patch(deployment(), json.dumps(body), MERGE, "Deployment")
    assert pod_spec(patched)["nodeSelector"] == {
        "disk": "ssd",
        "arch": "arm64",
        "$patch": "replace",
    }


# errors


@pytest.mark.parametrize(
    ("content_type", "prefix"),
    [(SMP, ""), (MERGE, "error decoding patch: "), (JSON_PATCH, "error decoding patch: ")],
)
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "unexpected end of JSON input"),
        (b'{"spec": {"replicas": 3}', "unexpected end of JSON input"),
        (b"{spec: 1}", "invalid character 's' looking for beginning of object key string"),
        (b'{"a": 1 "b": 2}', "invalid character '\"' after object key:value pair"),
        (b"[1 2]", "invalid character '2' after array element"),
        (b"{} x", "invalid character 'x' after top-level value"),
        (b"replicas=3", "invalid character 'r' looking for beginning of value"),
    ],
)
def test_malformed_bodies_are_bad_requests(
    content_type: str, prefix: str, body: bytes, message: str
) -> None:
    error = rejected(deployment(), body, content_type)
    assert (error.code, error.reason, error.message) == (400, "BadRequest", prefix + message)


def test_wrongly_shaped_bodies_are_bad_requests() -> None:
    error = rejected(deployment(), '{"op": "replace"}', JSON_PATCH)
    assert error.code == 400
    assert error.message == (
        "error decoding patch: json: cannot unmarshal object into Go value of type "
        "[]handlers.jsonPatchOp"
    )
    error = rejected(deployment(), "[]", SMP)
    assert error.code == 400
    assert (
        error.message
        == "json: cannot unmarshal array into Go value of type map[string]interface {}"
    )
    error = rejected(deployment(), '"x"', MERGE)
    assert error.code == 400
    assert error.message.startswith("error decoding patch: json: cannot unmarshal string")


@pytest.mark.parametrize(
    "operations",
    [
        [{"op": "test", "path": "/spec/replicas", "value": 7}],
        [{"op": "test", "path": "/spec/replicas", "value": 2}, {"op": "remove", "path": "/nope"}],
        [{"op": "replace", "path": "/spec/paused", "value": True}],
        [{"op": "add", "path": "/spec/missing/child", "value": 1}],
        [{"op": "frobnicate", "path": "/spec"}],
    ],
)
def test_json_patch_that_does_not_apply_is_invalid(operations: list[dict[str, Any]]) -> None:
    error = rejected(deployment(), json.dumps(operations), JSON_PATCH)
    assert (error.code, error.reason, error.message) == (422, "Invalid", REJECTED)


def test_json_patch_test_operation_that_passes() -> None:
    operations = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "41"},
        {"op": "add", "path": "/spec/paused", "value": True},
    ]
    patched = apply_patch(deployment(), json.dumps(operations), JSON_PATCH, "Deployment")
    assert patched["spec"]["paused"] is True


@pytest.mark.parametrize("content_type", ["application/apply-patch+yaml", "application/json", ""])
def test_unsupported_media_types(content_type: str) -> None:
    error = rejected(deployment(), b"{}", content_type)
    assert (error.code, error.reason) == (415, "UnsupportedMediaType")
    assert error.message == (
        "the body of the request was in an unknown format - accepted media types include: "
        f"{JSON_PATCH}, {MERGE}, {SMP}"
    )


def test_content_type_parameters_are_ignored() -> None:
    patched = apply_patch(
        deployment(), '{"spec":{"replicas":4}}', f"{MERGE}; charset=utf-8", "Deployment"
    )
    assert patched["spec"]["replicas"] == 4


# the input is never changed


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (SMP, {"spec": {"template": {"spec": {"containers": [{"name": "x", "image": "y"}]}}}}),
        (
            SMP,
            {
                "metadata": {"annotations": {"team": None}},
                "spec": {"strategy": {"$retainKeys": []}},
            },
        ),
        (MERGE, {"metadata": {"annotations": {"team": None}}, "spec": {"replicas": 9}}),
        (JSON_PATCH, [{"op": "remove", "path": "/spec/template/spec/containers/1"}]),
    ],
)
def test_input_is_not_mutated_nor_shared(content_type: str, body: Any) -> None:
    original = deployment()
    snapshot = copy.deepcopy(original)
    patched = apply_patch(original, json.dumps(body), content_type, "Deployment")
    assert original == snapshot
    patched["metadata"]["generation"] = 99
    patched["status"]["conditions"].clear()
    assert original == snapshot
