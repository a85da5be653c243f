"""deploy/ through the real kubectl against the sandbox's API server, validation left on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from sandbox.resources import (
    CONFIG_MAPS,
    DEPLOYMENTS,
    PERSISTENT_VOLUME_CLAIMS,
    ROLE_BINDINGS,
    ROLES,
    SERVICE_ACCOUNTS,
    SERVICES,
)
from tests.deploy.manifests import BUILD, DEPLOY
from tests.kubectl import kubectl
from tests.sandbox.served import Api, served_api

BOT_RESOURCES = (
    SERVICE_ACCOUNTS,
    ROLES,
    ROLE_BINDINGS,
    CONFIG_MAPS,
    PERSISTENT_VOLUME_CLAIMS,
    DEPLOYMENTS,
    SERVICES,
)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with served_api(tmp_path) as running:
        yield running


async def test_a_server_dry_run_of_the_kustomization_passes_and_stores_nothing(api: Api) -> None:
    before = api.store.resource_version
    result = await kubectl(api.kubeconfig, "apply", "-k", str(DEPLOY), "--dry-run=server")
    assert result.code == 0, result.stderr
    assert result.stderr == ""
    assert sorted(result.stdout.splitlines()) == [
        "configmap/holmbot-config created (server dry run)",
        "deployment.apps/holmbot created (server dry run)",
        "persistentvolumeclaim/holmbot-state created (server dry run)",
        "role.rbac.authorization.k8s.io/holmbot created (server dry run)",
        "rolebinding.rbac.authorization.k8s.io/holmbot created (server dry run)",
        "service/holmbot created (server dry run)",
        "serviceaccount/holmbot created (server dry run)",
    ]
    build = await kubectl(api.kubeconfig, "apply", "-k", str(BUILD), "--dry-run=server")
    assert build.stdout.strip() == "job.batch/kaniko-holmbot created (server dry run)", build.stderr
    assert api.store.resource_version == before
    assert all(api.store.list(resource, "holm") == [] for resource in BOT_RESOURCES)
    dry_runs = [r for r in api.server.requests if r.verb == "create"]
    assert len(dry_runs) == len(BOT_RESOURCES) + 1  # every object went to the server


async def test_applying_the_deployment_file_keeps_validation_on_and_is_stored(api: Api) -> None:
    manifest = DEPLOY / "deployment.yaml"
    applied = await kubectl(api.kubeconfig, "apply", "-f", str(manifest), "-n", "holm")
    assert applied.code == 0, applied.stderr
    assert applied.stdout.strip() == "deployment.apps/holmbot created"
    stored = api.store.get(DEPLOYMENTS, "holm", "holmbot")
    assert stored["spec"]["strategy"] == {"type": "Recreate"}
    assert stored["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "10.110.67.87:5000/holmbot:latest"
    )
    again = await kubectl(api.kubeconfig, "apply", "-f", str(manifest), "-n", "holm")
    assert again.stdout.strip() == "deployment.apps/holmbot unchanged", again.stderr


async def test_a_misspelt_top_level_field_is_refused_by_the_servers_strict_validation(
    api: Api, tmp_path: Path
) -> None:
    deployment = yaml.safe_load((DEPLOY / "deployment.yaml").read_text())
    deployment["sepc"] = deployment.pop("spec")
    broken = tmp_path / "deployment.yaml"
    broken.write_text(yaml.safe_dump(deployment))
    refused = await kubectl(api.kubeconfig, "apply", "-f", str(broken), "-n", "holm")
    assert refused.code == 1
    assert 'strict decoding error: unknown field "sepc"' in refused.stderr
    assert api.store.find(DEPLOYMENTS, "holm", "holmbot") is None
