"""The sandbox's API server, driven by the official client, kubectl and raw HTTP."""

from __future__ import annotations

import asyncio
import json

import pytest
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from sandbox.resources import DEPLOYMENTS
from tests.kubectl import kubectl
from tests.sandbox.served import Api


def deployment(name: str, image: str = "10.110.67.87:5000/nova:v1") -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {"name": name, "image": image},
                        {"name": "envoy", "image": "10.110.67.87:5000/envoy:v1"},
                    ]
                },
            },
        },
    }


def call(function, *args, **kwargs):
    """Run a blocking client call off the loop that serves it."""
    return asyncio.to_thread(function, *args, **kwargs)


async def test_created_deployment_is_defaulted_like_a_real_server(api: Api) -> None:
    created = await call(api.apps.create_namespaced_deployment, "holm", deployment("nova"))
    assert created.metadata.generation == 1
    assert created.metadata.uid and created.metadata.resource_version
    assert created.spec.strategy.rolling_update.max_surge == "25%"
    assert created.spec.revision_history_limit == 10
    assert created.spec.progress_deadline_seconds == 600
    container = created.spec.template.spec.containers[0]
    assert container.image_pull_policy == "IfNotPresent"
    assert created.spec.template.spec.restart_policy == "Always"


async def test_generation_moves_only_with_the_spec(api: Api) -> None:
    await call(api.apps.create_namespaced_deployment, "holm", deployment("nova"))
    patched = await call(
        api.apps.patch_namespaced_deployment,
        "nova",
        "holm",
        {"spec": {"template": {"spec": {"containers": [{"name": "nova", "image": "r/nova:v2"}]}}}},
    )
    assert patched.metadata.generation == 2
    images = [c.image for c in patched.spec.template.spec.containers]
    assert images == ["r/nova:v2", "10.110.67.87:5000/envoy:v1"]
    labelled = await call(
        api.apps.patch_namespaced_deployment,
        "nova",
        "holm",
        {"metadata": {"annotations": {"team": "ops"}}},
    )
    assert labelled.metadata.generation == 2
    status = await call(
        api.apps.patch_namespaced_deployment_status,
        "nova",
        "holm",
        {"status": {"observedGeneration": 2, "replicas": 2}},
    )
    assert status.metadata.generation == 2
    assert status.status.observed_generation == 2


async def test_stale_write_is_refused_with_409(api: Api) -> None:
    await call(api.apps.create_namespaced_deployment, "holm", deployment("nova"))
    first = await call(api.apps.read_namespaced_deployment, "nova", "holm")
    first.spec.replicas = 3
    await call(api.apps.replace_namespaced_deployment, "nova", "holm", first)
    first.spec.replicas = 5  # still carries the old resourceVersion
    with pytest.raises(ApiException) as refused:
        await call(api.apps.replace_namespaced_deployment, "nova", "holm", first)
    assert refused.value.status == 409
    body = json.loads(refused.value.body)
    assert body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]
    now = await call(api.apps.read_namespaced_deployment, "nova", "holm")
    assert now.spec.replicas == 3


async def test_errors_are_kubernetes_status_objects(api: Api) -> None:
    async with api.http() as http:
        missing = await http.get("/apis/apps/v1/namespaces/holm/deployments/ghost")
        assert missing.status_code == 404
        assert missing.json() == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": 'deployments.apps "ghost" not found',
            "reason": "NotFound",
            "details": {"name": "ghost", "group": "apps", "kind": "deployments"},
            "code": 404,
        }
        unknown = await http.get("/apis/apps/v1/namespaces/holm/widgets")
        assert (unknown.status_code, unknown.json()["reason"]) == (404, "NotFound")
        bad_name = await http.post(
            "/apis/apps/v1/namespaces/holm/deployments", json=deployment("Bad_Name")
        )
        assert (bad_name.status_code, bad_name.json()["reason"]) == (422, "Invalid")
        assert "RFC 1123" in bad_name.json()["message"]
        garbage = await http.post(
            "/apis/apps/v1/namespaces/holm/deployments",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        assert (garbage.status_code, garbage.json()["reason"]) == (400, "BadRequest")
        await http.post("/apis/apps/v1/namespaces/holm/deployments", json=deployment("nova"))
        bad_patch = await http.patch(
            "/apis/apps/v1/namespaces/holm/deployments/nova",
            content=b'{"spec": ',
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert bad_patch.status_code == 400
        apply = await http.patch(
            "/apis/apps/v1/namespaces/holm/deployments/nova",
            content=b"spec: {}",
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        assert apply.status_code == 415
        no_selector = deployment("orphan")
        del no_selector["spec"]["selector"]
        invalid = await http.post("/apis/apps/v1/namespaces/holm/deployments", json=no_selector)
        assert invalid.status_code == 422
        assert "spec.selector" in invalid.json()["message"]
        for response in (missing, unknown, bad_name, garbage, bad_patch, apply, invalid):
            assert "Traceback" not in response.text


async def test_watch_resumes_from_a_resource_version_and_expires(api: Api) -> None:
    await call(api.apps.create_namespaced_deployment, "holm", deployment("nova"))
    listed = await call(
        api.apps.list_namespaced_deployment, "holm", field_selector="metadata.name=nova"
    )
    await call(api.apps.patch_namespaced_deployment, "nova", "holm", {"spec": {"replicas": 4}})

    def first_event() -> tuple[str, int]:
        stream = watch.Watch().stream(
            api.apps.list_namespaced_deployment,
            "holm",
            field_selector="metadata.name=nova",
            resource_version=listed.metadata.resource_version,
            timeout_seconds=5,
        )
        for event in stream:
            return event["type"], event["object"].spec.replicas
        raise AssertionError("no event")

    assert await call(first_event) == ("MODIFIED", 4)
    api.store.compact()
    async with api.http() as http:
        expired = await http.get(
            "/apis/apps/v1/namespaces/holm/deployments",
            params={"watch": "true", "resourceVersion": "1", "timeoutSeconds": "2"},
        )
    event = json.loads(expired.text.splitlines()[0])
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410


async def test_watch_ends_after_timeout_seconds(api: Api) -> None:
    async with api.http() as http:
        response = await http.get(
            "/api/v1/namespaces/holm/pods",
            params={"watch": "1", "timeoutSeconds": "1", "resourceVersion": "0"},
        )
    assert response.status_code == 200
    assert response.text == ""


async def test_label_and_field_selectors(api: Api) -> None:
    for name in ("nova", "pulse", "scribe"):
        await call(api.apps.create_namespaced_deployment, "holm", deployment(name))
    chosen = await call(
        api.apps.list_namespaced_deployment, "holm", label_selector="app in (nova, pulse)"
    )
    assert [d.metadata.name for d in chosen.items] == ["nova", "pulse"]
    others = await call(
        api.apps.list_namespaced_deployment, "holm", field_selector="metadata.name!=nova"
    )
    assert [d.metadata.name for d in others.items] == ["pulse", "scribe"]
    with pytest.raises(ApiException) as bad:
        await call(api.apps.list_namespaced_deployment, "holm", label_selector="app in nova")
    assert bad.value.status == 400


async def test_kubectl_discovers_gets_and_patches(api: Api) -> None:
    await call(api.apps.create_namespaced_deployment, "holm", deployment("nova"))
    version = await kubectl(api.kubeconfig, "version", "-o", "json")
    assert json.loads(version.stdout)["serverVersion"]["gitVersion"] == "v1.32.4"
    resources = await kubectl(api.kubeconfig, "api-resources", "--no-headers")
    assert any(
        line.split()[:2] == ["deployments", "deploy"] for line in resources.stdout.splitlines()
    )
    table = await kubectl(api.kubeconfig, "get", "deploy")
    assert table.stdout.splitlines()[0].split() == [
        "NAME",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "AGE",
    ]
    assert table.stdout.splitlines()[1].split()[:4] == ["nova", "0/2", "0", "0"]
    set_image = await kubectl(api.kubeconfig, "set", "image", "deployment/nova", "nova=r/nova:v9")
    assert set_image.code == 0, set_image.stderr
    assert set_image.stdout.strip() == "deployment.apps/nova image updated"
    images = await kubectl(
        api.kubeconfig,
        "get",
        "deploy",
        "nova",
        "-o",
        "jsonpath={.spec.template.spec.containers[*].image}",
    )
    assert images.stdout == "r/nova:v9 10.110.67.87:5000/envoy:v1"
    scale = await kubectl(api.kubeconfig, "scale", "deployment/nova", "--replicas=5")
    assert scale.code == 0, scale.stderr
    assert api.store.get(DEPLOYMENTS, "holm", "nova")["spec"]["replicas"] == 5
    missing = await kubectl(api.kubeconfig, "get", "deploy", "ghost")
    assert missing.code == 1
    assert 'deployments.apps "ghost" not found' in missing.stderr
