"""The kinds a service's manifests carry, served like the API server: defaults, 422s, dry runs,
field validation, OpenAPI for kubectl, and the record of what was asked."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from sandbox.recorder import ApiRequest
from sandbox.resources import (
    ALL_RESOURCES,
    CONFIG_MAPS,
    JOBS,
    PERSISTENT_VOLUME_CLAIMS,
    ROLE_BINDINGS,
    ROLES,
    SECRETS,
    SERVICE_ACCOUNTS,
    SERVICES,
)
from tests.kubectl import kubectl
from tests.sandbox.served import Api

Obj = dict[str, Any]


def call(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking client call off the loop that serves it."""
    return asyncio.to_thread(function, *args, **kwargs)


def role(name: str = "reader", rules: list[Obj] | None = None) -> Obj:
    rules = rules or [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name},
        "rules": rules,
    }


def binding(role_name: str = "reader") -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role_name},
        "subjects": [{"kind": "ServiceAccount", "name": "bot", "namespace": "holm"}],
    }


def job(restart_policy: str | None = "Never") -> Obj:
    spec: Obj = {"containers": [{"name": "kaniko", "image": "executor:v1"}]}
    if restart_policy:
        spec["restartPolicy"] = restart_policy
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "build"},
        "spec": {"template": {"spec": spec}},
    }


def claim(storage: str | None = "1Gi") -> Obj:
    requests = {"storage": storage} if storage else {}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "state"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "longhorn",
            "resources": {"requests": requests},
        },
    }


def service(port: int = 8080) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "bot"},
        "spec": {"selector": {"app": "bot"}, "ports": [{"name": "probes", "port": port}]},
    }


def path_of(resource: Any, name: str | None = None, namespace: str = "holm") -> str:
    base = f"/apis/{resource.group}/{resource.version}" if resource.group else "/api/v1"
    collection = f"{base}/namespaces/{namespace}/{resource.plural}"
    return f"{collection}/{name}" if name else collection


async def test_every_new_kind_is_created_read_listed_patched_and_deleted(api: Api) -> None:
    objects = {
        SERVICE_ACCOUNTS: {"metadata": {"name": "bot"}},
        ROLES: role(),
        ROLE_BINDINGS: binding(),
        CONFIG_MAPS: {"metadata": {"name": "bot-config"}, "data": {"holmbot.yaml": "a: 1\n"}},
        SECRETS: {"metadata": {"name": "bot-secrets"}, "stringData": {"token": "t"}},
        PERSISTENT_VOLUME_CLAIMS: claim(),
        SERVICES: service(),
        JOBS: job(),
    }
    async with api.http() as http:
        for resource, body in objects.items():
            created = await http.post(path_of(resource), json=body)
            assert created.status_code == 201, created.text
            assert created.json()["kind"] == resource.kind
            name = body["metadata"]["name"]
            got = await http.get(path_of(resource, name))
            assert got.json()["metadata"]["uid"] == created.json()["metadata"]["uid"]
            listing = (await http.get(path_of(resource))).json()
            assert listing["kind"] == f"{resource.kind}List"
            assert [item["metadata"]["name"] for item in listing["items"]] == [name]
            patched = await http.patch(
                path_of(resource, name),
                json={"metadata": {"labels": {"team": "ops"}}},
                headers={"Content-Type": "application/merge-patch+json"},
            )
            assert patched.status_code == 200, patched.text
            assert api.store.get(resource, "holm", name)["metadata"]["labels"] == {"team": "ops"}
            deleted = await http.delete(path_of(resource, name))
            assert deleted.status_code == 200, deleted.text
            assert api.store.find(resource, "holm", name) is None


async def test_discovery_and_kubectl_api_resources_list_the_new_kinds(api: Api) -> None:
    result = await kubectl(api.kubeconfig, "api-resources", "--no-headers", "-o", "name")
    assert result.code == 0, result.stderr
    names = set(result.stdout.split())
    assert {
        "serviceaccounts",
        "configmaps",
        "secrets",
        "persistentvolumeclaims",
        "services",
        "jobs.batch",
        "roles.rbac.authorization.k8s.io",
        "rolebindings.rbac.authorization.k8s.io",
    } <= names


async def test_secret_string_data_is_stored_as_base64_data_only(api: Api) -> None:
    body = {
        "metadata": {"name": "tokens"},
        "stringData": {"slack__bot_token": "xoxb-1"},
        "data": {"other": base64.b64encode(b"x").decode()},
    }
    created = await call(api.core.create_namespaced_secret, "holm", body)
    assert created.type == "Opaque"
    stored = api.store.get(SECRETS, "holm", "tokens")
    assert "stringData" not in stored
    assert base64.b64decode(stored["data"]["slack__bot_token"]) == b"xoxb-1"
    assert set(stored["data"]) == {"slack__bot_token", "other"}


async def test_service_gets_a_cluster_ip_that_a_replace_keeps_and_cannot_change(api: Api) -> None:
    created = await call(api.core.create_namespaced_service, "holm", service())
    ip = created.spec.cluster_ip
    assert ip and ip.startswith("10.")
    assert created.spec.type == "ClusterIP"
    assert created.spec.ports[0].target_port == 8080 and created.spec.ports[0].protocol == "TCP"
    replaced = service()
    replaced["metadata"]["labels"] = {"v": "2"}
    kept = await call(api.core.replace_namespaced_service, "bot", "holm", replaced)
    assert kept.spec.cluster_ip == ip
    replaced["spec"]["clusterIP"] = "10.96.5.5"
    with pytest.raises(ApiException) as refused:
        await call(api.core.replace_namespaced_service, "bot", "holm", replaced)
    assert refused.value.status == 422
    assert "spec.clusterIP: Invalid value: field is immutable" in refused.value.body


async def test_a_job_is_defaulted_with_job_name_labels_and_its_template_is_immutable(
    api: Api,
) -> None:
    batch = client.BatchV1Api(api.api_client)
    created = await call(batch.create_namespaced_job, "holm", job())
    assert created.spec.backoff_limit == 6
    assert created.spec.template.metadata.labels["job-name"] == "build"
    changed = job()
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "executor:v2"
    with pytest.raises(ApiException) as refused:
        await call(batch.replace_namespaced_job, "build", "holm", changed)
    assert refused.value.status == 422
    assert "spec.template: Invalid value: field is immutable" in refused.value.body


async def test_a_claim_starts_pending_and_only_its_requests_may_change(api: Api) -> None:
    created = await call(api.core.create_namespaced_persistent_volume_claim, "holm", claim())
    assert created.status.phase == "Pending"
    assert created.spec.volume_mode == "Filesystem"
    grown = await call(
        api.core.patch_namespaced_persistent_volume_claim,
        "state",
        "holm",
        {"spec": {"resources": {"requests": {"storage": "2Gi"}}}},
    )
    assert grown.spec.resources.requests == {"storage": "2Gi"}
    with pytest.raises(ApiException) as refused:
        await call(
            api.core.patch_namespaced_persistent_volume_claim,
            "state",
            "holm",
            {"spec": {"storageClassName": "local-path"}},
        )
    assert refused.value.status == 422
    assert "spec is immutable after creation" in refused.value.body


@pytest.mark.parametrize(
    ("resource", "body", "message"),
    [
        (ROLES, role(rules=[{"apiGroups": [""], "resources": ["pods"]}]), "rules[0].verbs"),
        (ROLES, role(rules=[{"resources": ["pods"], "verbs": ["get"]}]), "rules[0].apiGroups"),
        (JOBS, job(None), 'spec.template.spec.restartPolicy: Unsupported value: "Always"'),
        (PERSISTENT_VOLUME_CLAIMS, claim(None), "spec.resources[storage]: Required value"),
        (SERVICES, service(0), "spec.ports[0].port: Invalid value: 0"),
        (CONFIG_MAPS, {"metadata": {"name": "c"}, "data": {"a/b": "x"}}, "data[a/b]"),
        (SECRETS, {"metadata": {"name": "s"}, "data": {"k": "not base64!"}}, "data[k]"),
        (ROLE_BINDINGS, {**binding(), "roleRef": {"kind": "Role"}}, "roleRef.apiGroup"),
    ],
)
async def test_invalid_objects_are_refused_with_422_and_not_stored(
    api: Api, resource: Any, body: Obj, message: str
) -> None:
    async with api.http() as http:
        answer = await http.post(path_of(resource), json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["reason"] == "Invalid"
    assert message in answer.json()["message"]
    assert api.store.list(resource) == []


async def test_a_role_binding_cannot_change_its_role(api: Api) -> None:
    rbac = client.RbacAuthorizationV1Api(api.api_client)
    await call(rbac.create_namespaced_role_binding, "holm", binding())
    with pytest.raises(ApiException) as refused:
        await call(rbac.replace_namespaced_role_binding, "reader", "holm", binding("writer"))
    assert refused.value.status == 422
    assert "roleRef: Invalid value: cannot change roleRef" in refused.value.body


async def test_dry_run_writes_are_checked_and_answered_but_never_stored(api: Api) -> None:
    before = api.store.resource_version
    async with api.http() as http:
        created = await http.post(
            path_of(CONFIG_MAPS) + "?dryRun=All",
            json={"metadata": {"name": "c"}, "data": {"a": "1"}},
        )
        assert created.status_code == 201, created.text
        assert created.json()["metadata"]["uid"]
        assert "resourceVersion" not in created.json()["metadata"]
        assert api.store.find(CONFIG_MAPS, "holm", "c") is None
        refused = await http.post(path_of(JOBS) + "?dryRun=All", json=job(None))
        assert refused.status_code == 422
        await http.post(path_of(CONFIG_MAPS), json={"metadata": {"name": "c"}, "data": {"a": "1"}})
        stored = api.store.resource_version
        patched = await http.patch(
            path_of(CONFIG_MAPS, "c") + "?dryRun=All",
            json={"data": {"a": "2"}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert patched.json()["data"] == {"a": "2"}
        deleted = await http.delete(path_of(CONFIG_MAPS, "c") + "?dryRun=All")
        assert deleted.status_code == 200
        everything = await http.delete(path_of(CONFIG_MAPS) + "?dryRun=All")
        assert [i["metadata"]["name"] for i in everything.json()["items"]] == ["c"]
        bad = await http.delete(path_of(CONFIG_MAPS, "c") + "?dryRun=Yes")
        assert bad.status_code == 400
        assert 'Invalid dryRun value: "Yes"' in bad.json()["message"]
    assert api.store.get(CONFIG_MAPS, "holm", "c")["data"] == {"a": "1"}
    assert api.store.resource_version == stored == before + 1


async def test_unknown_fields_are_refused_when_strict_and_dropped_with_a_warning(
    api: Api,
) -> None:
    body = {"metadata": {"name": "c", "colour": "red"}, "bogus": 1, "data": {"a": "1"}}
    async with api.http() as http:
        strict = await http.post(path_of(CONFIG_MAPS) + "?fieldValidation=Strict", json=body)
        assert strict.status_code == 400
        assert strict.json()["message"] == (
            'strict decoding error: unknown field "bogus", unknown field "metadata.colour"'
        )
        assert api.store.find(CONFIG_MAPS, "holm", "c") is None
        warned = await http.post(path_of(CONFIG_MAPS), json=body)
        assert warned.status_code == 201
        assert warned.headers["Warning"] == (
            '299 - "unknown field \\"bogus\\"", 299 - "unknown field \\"metadata.colour\\""'
        )
        stored = api.store.get(CONFIG_MAPS, "holm", "c")
        assert "bogus" not in stored and "colour" not in stored["metadata"]
        wrong = await http.post(path_of(CONFIG_MAPS) + "?fieldValidation=Loose", json=body)
        assert wrong.status_code == 400


async def test_openapi_v3_names_every_kind_and_its_patch_takes_field_validation(
    api: Api,
) -> None:
    async with api.http() as http:
        root = (await http.get("/openapi/v3")).json()["paths"]
        served = {(r.group, r.version) for r in ALL_RESOURCES}
        assert set(root) == {f"apis/{g}/{v}" if g else f"api/{v}" for g, v in served}
        for resource in ALL_RESOURCES:
            key = f"apis/{resource.group}/{resource.version}" if resource.group else "api/v1"
            document = (await http.get(root[key]["serverRelativeURL"])).json()
            patches = [
                path["patch"]
                for path in document["paths"].values()
                if "patch" in path
                and path["patch"]["x-kubernetes-group-version-kind"]["kind"] == resource.kind
            ]
            assert patches, resource.kind
            for operation in patches:
                names = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
                assert {"fieldValidation", "dryRun"} <= names
        missing = await http.get("/openapi/v3/apis/nothing/v1")
        assert missing.status_code == 404


async def test_kubectl_apply_validates_on_the_server_without_turning_validation_off(
    api: Api, tmp_path: Path
) -> None:
    manifest = tmp_path / "config.yaml"
    manifest.write_text(
        json.dumps(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}
        )
    )
    applied = await kubectl(api.kubeconfig, "apply", "-f", str(manifest))
    assert applied.code == 0, applied.stderr
    assert applied.stdout.strip() == "configmap/c created"
    manifest.write_text(
        json.dumps(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "2"}}
        )
    )
    again = await kubectl(api.kubeconfig, "apply", "-f", str(manifest))
    assert again.stdout.strip() == "configmap/c configured", again.stderr
    assert api.store.get(CONFIG_MAPS, "holm", "c")["data"] == {"a": "2"}
    manifest.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "d"},
                "datta": {"a": "1"},
            }
        )
    )
    typo = await kubectl(api.kubeconfig, "apply", "-f", str(manifest))
    assert typo.code == 1
    assert 'strict decoding error: unknown field "datta"' in typo.stderr
    assert api.store.find(CONFIG_MAPS, "holm", "d") is None


async def test_every_resource_request_is_recorded_as_the_authorizer_sees_it(api: Api) -> None:
    async with api.http() as http:
        await http.post(path_of(CONFIG_MAPS), json={"metadata": {"name": "c"}})
        await http.get(path_of(CONFIG_MAPS, "c"))
        async with http.stream("GET", path_of(CONFIG_MAPS) + "?watch=true") as watching:
            assert watching.status_code == 200  # headers sent: the watch is open; leave it
        await http.put(path_of(CONFIG_MAPS, "c"), json={"metadata": {"name": "c"}})
        await http.delete(path_of(CONFIG_MAPS))
        await http.get("/api/v1/nodes")
        await http.get("/api/v1/pods")
        await http.get(path_of(JOBS, "missing"))
        await http.get("/openapi/v3")
        await http.get("/apis")
    core = {"group": "", "resource": "configmaps", "namespace": "holm"}
    assert api.server.requests == [
        ApiRequest("create", **core),
        ApiRequest("get", **core),
        ApiRequest("watch", **core),
        ApiRequest("update", **core),
        ApiRequest("deletecollection", **core),
        ApiRequest("list", "", "nodes"),
        ApiRequest("list", "", "pods"),
        ApiRequest("get", "batch", "jobs", namespace="holm"),
    ]
