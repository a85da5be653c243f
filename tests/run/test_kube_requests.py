"""The bot's Kubernetes requests (`commands.clients.kube_api`), made without the client's
generated API classes, are the requests those classes make: the same method, URL, headers and
body reach the client's REST layer for every call holmbot makes, and the raw response comes
back as it does with `_preload_content=False`; a refusal is the same `ApiException`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException, NotFoundException

from commands.clients.kube_api import AppsV1, CoreV1
from sandbox.serving import write_kubeconfig

DEPLOYMENT_PATCH = {"spec": {"template": {"spec": {"containers": [{"name": "nova"}]}}}}
JSON_PATCH = [{"op": "replace", "path": "/spec/replicas", "value": 3}]
# (api, method, args, keywords): every call commands.clients.kube makes, with what it passes
CALLS: list[tuple[str, str, tuple[Any, ...], dict[str, Any]]] = [
    ("apps", "read_namespaced_deployment", ("nova", "holm"), {}),
    ("apps", "list_namespaced_deployment", ("holm",), {"label_selector": "app in (a, b)"}),
    (
        "apps",
        "list_namespaced_deployment",
        ("holm",),
        {
            "field_selector": "metadata.name=nova",
            "resource_version": "41",
            "timeout_seconds": 60,
            "watch": True,
        },
    ),
    ("apps", "list_namespaced_replica_set", ("holm",), {"label_selector": "app=nova"}),
    ("apps", "patch_namespaced_deployment", ("nova", "holm", DEPLOYMENT_PATCH), {}),
    ("apps", "patch_namespaced_deployment", ("nova", "holm", JSON_PATCH), {}),
    ("apps", "patch_namespaced_deployment_scale", ("nova", "holm", {"spec": {"replicas": 2}}), {}),
    ("core", "list_namespaced_pod", ("holm",), {"label_selector": "app=nova"}),
    ("core", "list_namespaced_service", ("holm",), {}),
    ("core", "read_namespaced_service", ("nova", "holm"), {}),
    ("core", "list_namespaced_event", ("holm",), {"field_selector": "type=Warning"}),
    ("core", "list_node", (), {}),
    (
        "core",
        "read_namespaced_pod_log",
        ("nova-7d4b9-x2k", "holm"),
        {
            "container": "envoy",
            "previous": True,
            "tail_lines": 200,
            "since_seconds": 3600,
            "timestamps": True,
            "limit_bytes": 65536,
        },
    ),
]


class Recorded:
    """What reached the REST layer, answered with `status`."""

    def __init__(self, status: int = 200) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.status = status

    def request(
        self, method: str, url: str, headers: Any = None, body: Any = None, **kw: Any
    ) -> client.rest.RESTResponse:
        self.calls.append((method, url, dict(headers or {}), body, kw.get("_request_timeout")))
        return client.rest.RESTResponse(_Raw(self.status))


class _Raw:
    def __init__(self, status: int) -> None:
        self.status = status
        self.reason = "Not Found" if status == 404 else "OK"
        self.headers = {"content-type": "application/json"}
        self.data = b'{"kind": "Status", "message": "deployments \\"nova\\" not found"}'


def api_client(recorded: Recorded) -> client.ApiClient:
    configuration = client.Configuration()
    configuration.host = "https://10.0.0.1:6443"
    configuration.api_key = {"authorization": "Bearer sekrit"}
    api = client.ApiClient(configuration)
    api.rest_client = recorded  # type: ignore[assignment]
    return api


@pytest.mark.parametrize(("api", "method", "args", "keywords"), CALLS)
def test_each_request_is_the_one_the_generated_client_makes(
    api: str, method: str, args: tuple[Any, ...], keywords: dict[str, Any]
) -> None:
    ours, theirs = Recorded(), Recorded()
    generated = {"apps": client.AppsV1Api, "core": client.CoreV1Api}[api]
    made = {"apps": AppsV1, "core": CoreV1}[api]
    ours_answer = getattr(made(api_client(ours)), method)(
        *args, _preload_content=False, _request_timeout=(5, 65), **keywords
    )
    theirs_answer = getattr(generated(api_client(theirs)), method)(
        *args, _preload_content=False, _request_timeout=(5, 65), **keywords
    )
    assert ours.calls == theirs.calls and len(ours.calls) == 1
    assert type(ours_answer) is type(theirs_answer) is _Raw


def test_a_refusal_is_the_same_api_exception() -> None:
    apps = AppsV1(api_client(Recorded(404)))
    with pytest.raises(NotFoundException) as ours:
        apps.read_namespaced_deployment("nova", "holm", _preload_content=False)
    generated = client.AppsV1Api(api_client(Recorded(404)))
    with pytest.raises(ApiException) as theirs:
        generated.read_namespaced_deployment("nova", "holm", _preload_content=False)
    assert (ours.value.status, ours.value.reason, ours.value.body) == (
        theirs.value.status,
        theirs.value.reason,
        theirs.value.body,
    )


def test_a_parameter_it_does_not_know_is_refused() -> None:
    core = CoreV1(api_client(Recorded()))
    with pytest.raises(TypeError, match="unknown parameters"):
        core.read_namespaced_pod_log("p", "holm", tailLines=5)


def test_the_bot_loads_no_generated_api_class_or_model(tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kc", "http://127.0.0.1:9", "holm")
    code = (
        "import sys; from commands.clients.kube import Kube;"
        f"kube = Kube.connect('holm', kubeconfig={str(kubeconfig)!r});"
        "kube.watch('pods', print);"
        "print(sorted(m for m in sys.modules if m.startswith("
        "('kubernetes.client.api.', 'kubernetes.client.models.'))))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "[]"
