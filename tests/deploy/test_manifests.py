"""deploy/ renders, every object is valid Kubernetes 1.32, and the pieces fit the bot and image."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from bot.settings import SECRET_SETTINGS, load_bot_config
from tests.deploy.manifests import BUILD, DEPLOY, ROOT, render, rendered

KUBERNETES_VERSION = "1.32.0"
REGISTRY = "10.110.67.87:5000"
Obj = dict[str, Any]


def container(deployment: Obj) -> Obj:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def env(deployment: Obj) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container(deployment)["env"]}


def volume_at(deployment: Obj, path: str) -> Obj:
    """The pod volume mounted at `path` in the bot's container."""
    mount = next(m for m in container(deployment)["volumeMounts"] if m["mountPath"] == path)
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    return next(v for v in volumes if v["name"] == mount["name"])


def dockerfile_final_stage() -> list[str]:
    """The Dockerfile's instructions after its last FROM, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    last_from = max(i for i, line in enumerate(instructions) if line.startswith("FROM "))
    return instructions[last_from:]


def test_the_kustomization_renders_the_bots_objects_in_holm() -> None:
    objects = render()
    assert sorted((obj["kind"], obj["metadata"]["name"]) for obj in objects) == [
        ("ConfigMap", "holmbot-config"),
        ("Deployment", "holmbot"),
        ("PersistentVolumeClaim", "holmbot-state"),
        ("Role", "holmbot"),
        ("RoleBinding", "holmbot"),
        ("Service", "holmbot"),
        ("ServiceAccount", "holmbot"),
    ]
    assert {obj["metadata"]["namespace"] for obj in objects} == {"holm"}
    assert [obj["kind"] for obj in render(BUILD)] == ["Job"]


def all_manifests() -> list[Obj]:
    example = yaml.safe_load((DEPLOY / "secret.example.yaml").read_text())
    return [*render(), *render(BUILD), example]


@pytest.mark.parametrize(
    "obj", all_manifests(), ids=lambda obj: f"{obj['kind']}/{obj['metadata']['name']}"
)
def test_every_object_validates_against_the_kubernetes_1_32_schemas(obj: Obj) -> None:
    assert kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True) == "1.32"


def test_the_strict_schemas_refuse_a_misspelt_field() -> None:
    deployment = rendered("Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_deployment_is_shaped_like_the_runbooks_services() -> None:
    deployment = rendered("Deployment")
    spec, pod = deployment["spec"], deployment["spec"]["template"]["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    assert spec["selector"]["matchLabels"] == deployment["spec"]["template"]["metadata"]["labels"]
    (term,) = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert term["matchExpressions"] == [
        {"key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["openmediavault"]}
    ]
    bot = container(deployment)
    assert bot["name"] == "holmbot"  # what `/deploy holmbot TAG` changes
    assert bot["image"] == f"{REGISTRY}/holmbot:latest"
    assert bot["ports"] == [{"name": "probes", "containerPort": 8080}]
    assert bot["livenessProbe"]["httpGet"] == {"path": "/health", "port": "probes"}
    assert bot["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "probes"}
    assert bot["resources"] == {
        "requests": {"memory": "64Mi", "cpu": "50m"},
        "limits": {"memory": "192Mi"},
    }


def test_the_pod_runs_locked_down_as_the_images_user() -> None:
    deployment = rendered("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    context = pod["securityContext"]
    assert context["runAsNonRoot"] is True
    stage = dockerfile_final_stage()
    uid = next(line for line in stage if line.startswith("ARG HOLMBOT_UID=")).split("=")[1]
    assert next(line for line in stage if line.startswith("USER ")) == (
        "USER ${HOLMBOT_UID}:${HOLMBOT_UID}"
    )
    assert context["runAsUser"] == context["runAsGroup"] == context["fsGroup"] == int(uid)
    locked = container(deployment)["securityContext"]
    assert locked["readOnlyRootFilesystem"] is True
    assert locked["allowPrivilegeEscalation"] is False
    assert locked["capabilities"] == {"drop": ["ALL"]}
    assert pod["automountServiceAccountToken"] is True
    assert pod["serviceAccountName"] == rendered("ServiceAccount")["metadata"]["name"]


def test_state_lives_on_the_claim_and_tmp_is_the_only_other_writable_place() -> None:
    deployment, claim = rendered("Deployment"), rendered("PersistentVolumeClaim")
    state_dir = env(deployment)["HOLMBOT_STATE_DIR"]
    assert state_dir == "/var/lib/holmbot"
    assert volume_at(deployment, state_dir)["persistentVolumeClaim"] == {
        "claimName": claim["metadata"]["name"]
    }
    assert claim["spec"] == {
        "storageClassName": "longhorn",
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
    }
    assert "emptyDir" in volume_at(deployment, "/tmp")
    mounts = container(deployment)["volumeMounts"]
    writable = [mount["mountPath"] for mount in mounts if not mount.get("readOnly")]
    assert sorted(writable) == ["/tmp", state_dir]
    stage = dockerfile_final_stage()
    assert f"VOLUME {state_dir}" in stage
    env_lines = [line for line in stage if line.startswith("ENV ")]
    assert any(f"HOLMBOT_STATE_DIR={state_dir}" in line for line in env_lines)


def mounted_config(tmp_path: Path) -> tuple[Path, Path]:
    """The ConfigMap and an example Secret (values filled in) laid out as the pod mounts them."""
    deployment, config_map = rendered("Deployment"), rendered("ConfigMap")
    config_file = Path(env(deployment)["HOLMBOT_CONFIG"])
    assert volume_at(deployment, str(config_file.parent))["configMap"] == {
        "name": config_map["metadata"]["name"]
    }
    local_config = tmp_path / config_file.name
    local_config.write_text(config_map["data"][config_file.name])
    secret = yaml.safe_load((DEPLOY / "secret.example.yaml").read_text())
    secrets_dir = env(deployment)["HOLMBOT_SECRETS_DIR"]
    assert volume_at(deployment, secrets_dir)["secret"]["secretName"] == secret["metadata"]["name"]
    local_secrets = tmp_path / "secrets"
    local_secrets.mkdir()
    for key in secret["stringData"]:
        (local_secrets / key).write_text(f"value-of-{key}\n")
    return local_config, local_secrets


def test_the_bot_loads_the_config_map_and_the_secret_files_as_mounted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local_config, local_secrets = mounted_config(tmp_path)
    monkeypatch.setenv("HOLMBOT_SECRETS_DIR", str(local_secrets))
    config = load_bot_config(local_config)
    assert config.namespace == "holm"
    assert config.kubernetes.in_cluster is True
    assert config.registry.host == REGISTRY
    assert config.state_dir == Path(env(rendered("Deployment"))["HOLMBOT_STATE_DIR"])
    assert config.probes.port == container(rendered("Deployment"))["ports"][0]["containerPort"]
    assert config.slack.bot_token is not None
    assert config.slack.bot_token.get_secret_value() == "value-of-slack__bot_token"
    assert config.discord.token is not None
    assert config.discord.token.get_secret_value() == "value-of-discord__token"


def test_the_secret_template_names_every_secret_setting_with_empty_values() -> None:
    secret = yaml.safe_load((DEPLOY / "secret.example.yaml").read_text())
    expected = {f"{group}__{name}" for group, names in SECRET_SETTINGS.items() for name in names}
    assert set(secret["stringData"]) == expected
    assert set(secret["stringData"].values()) == {""}
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert "secret.example.yaml" not in kustomization["resources"]
    assert "Secret" not in {obj["kind"] for obj in render()}


def test_the_service_exposes_the_probes_port_to_prometheus() -> None:
    service, deployment = rendered("Service"), rendered("Deployment")
    assert service["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "8080",
        "prometheus.io/path": "/metrics",
    }
    assert service["spec"]["ports"] == [{"name": "probes", "port": 8080, "targetPort": "probes"}]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_the_role_binding_gives_the_role_to_the_bots_service_account() -> None:
    binding = rendered("RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": rendered("Role")["metadata"]["name"],
    }
    account = rendered("ServiceAccount")["metadata"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    ]


def test_the_kaniko_job_builds_the_dockerfile_and_pushes_the_deployments_image() -> None:
    job, deployment = rendered("Job", BUILD), rendered("Deployment")
    assert job["metadata"]["name"] == "kaniko-holmbot"
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["ttlSecondsAfterFinished"] == 300
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["affinity"] == deployment["spec"]["template"]["spec"]["affinity"]
    (kaniko,) = pod["containers"]
    assert kaniko["image"].startswith("gcr.io/kaniko-project/executor:")
    args = dict(arg.removeprefix("--").partition("=")[::2] for arg in kaniko["args"])
    assert args["destination"] == container(deployment)["image"]
    assert args["dockerfile"] == "Dockerfile"
    assert args["context"] == "tar:///workspace/holmbot-src.tar.gz"
    assert {"insecure", "skip-tls-verify"} <= set(args)
    assert kaniko["volumeMounts"] == [{"name": "source", "mountPath": "/workspace"}]
    assert pod["volumes"] == [{"name": "source", "configMap": {"name": "holmbot-src"}}]
