"""Configuration: YAML file, environment overrides, and clear errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from commands.core.config import Config, ConfigError, KubernetesConfig, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "holmbot.yaml"
    path.write_text(text)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return str(caught.value)


def test_defaults_match_the_runbook() -> None:
    config = load_config(None)
    assert config.namespace == "holm"
    assert config.registry.host == "10.110.67.87:5000"
    assert config.registry.url == "http://10.110.67.87:5000"
    assert config.backup.url == "http://192.168.8.197:30850"
    assert config.health.aggregator_url is None
    assert config.health.probe_timeout_seconds == 2.0
    assert config.rollout.timeout_seconds == 600
    assert config.rollout.auto_rollback == "rollback"
    assert (config.rollout.restart_threshold, config.rollout.restart_window_seconds) == (3, 300)
    assert config.rollout.health_failure_seconds == 120
    assert config.protected_services == []
    assert config.registry.image("nova", "v2") == "10.110.67.87:5000/nova:v2"
    assert (
        config.health.service_url("nova", "holm", 8080) == "http://nova.holm.svc.cluster.local:8080"
    )


def test_yaml_file_then_environment_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        """
namespace: staging
kubernetes:
  kubeconfig: /tmp/kubeconfig
  context: pi
registry:
  host: 127.0.0.1:5000
  url: http://127.0.0.1:5000/
backup:
  url: http://127.0.0.1:30850
  timeout_seconds: 3
health:
  aggregator_url: http://127.0.0.1:9000
  service_url_template: "http://127.0.0.1:9000/svc/{service}"
rollout:
  auto_rollback: report
protected_services: [postgres]
state_dir: /tmp/holmbot-state
""",
    )
    monkeypatch.setenv("HOLMBOT_BACKUP__URL", "http://backup.example:8080")
    monkeypatch.setenv("HOLMBOT_PROTECTED_SERVICES", "postgres, gateway")
    monkeypatch.setenv("HOLMBOT_ROLLOUT__RESTART_THRESHOLD", "5")
    config = load_config(path)
    assert config.namespace == "staging"
    assert config.kubernetes.kubeconfig == Path("/tmp/kubeconfig")
    assert config.kubernetes.context == "pi"
    assert config.registry.url == "http://127.0.0.1:5000"  # trailing slash dropped
    assert config.backup.url == "http://backup.example:8080"  # env wins
    assert config.backup.timeout_seconds == 3  # the file's sibling value is kept
    assert config.health.service_url("nova", "holm", 1) == "http://127.0.0.1:9000/svc/nova"
    assert config.rollout.auto_rollback == "report"
    assert config.rollout.restart_threshold == 5
    assert config.protected_services == ["postgres", "gateway"]
    assert config.state_dir == Path("/tmp/holmbot-state")


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLMBOT_CONFIG", str(write(tmp_path, "namespace: other\n")))
    assert load_config(None).namespace == "other"


def test_protected_services_with_a_broken_list_in_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOLMBOT_PROTECTED_SERVICES", "[postgres")
    with pytest.raises(ConfigError) as caught:
        load_config(None)
    assert "'[postgres' is not a list such as [postgres, vault]" in str(caught.value)
    assert "[environment HOLMBOT_PROTECTED_SERVICES]" in str(caught.value)


def test_protected_services_as_json_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLMBOT_PROTECTED_SERVICES", '["postgres"]')
    assert load_config(None).protected_services == ["postgres"]


def test_in_cluster_is_automatic_when_the_token_exists(tmp_path: Path) -> None:
    token = tmp_path / "token"
    assert not KubernetesConfig().use_in_cluster(token)
    token.write_text("x")
    assert KubernetesConfig().use_in_cluster(token)
    assert not KubernetesConfig(kubeconfig=tmp_path / "kc").use_in_cluster(token)
    assert not KubernetesConfig(in_cluster=False).use_in_cluster(token)
    assert KubernetesConfig(in_cluster=True).use_in_cluster(tmp_path / "absent")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("namespce: holm\n", "namespce: unknown setting"),
        ("namespace: Holm_1\n", "namespace: 'Holm_1' is not a Kubernetes name"),
        (
            "backup:\n  timeout_seconds: -3\n",
            "backup.timeout_seconds: Input should be greater than 0",
        ),
        ("backup:\n  url: ftp://x\n", "backup.url: must be an http:// or https:// URL"),
        ("registry:\n  host: http://r:5000\n", "registry.host: must be HOST or HOST:PORT"),
        (
            "health:\n  service_url_template: 'http://{svc}:{port}'\n",
            "health.service_url_template: uses unknown placeholders ['svc']",
        ),
        ("rollout:\n  auto_rollback: maybe\n", "rollout.auto_rollback: Input should be 'rollback'"),
        ("rollout:\n  restart_threshold: 0\n", "rollout.restart_threshold"),
        ("protected_services: [Postgres]\n", "protected_services"),
        ("kubernetes:\n  in_cluster: perhaps\n", "kubernetes.in_cluster"),
    ],
)
def test_bad_values_name_the_field_and_the_file(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    message = error_of(path)
    assert expected in message
    assert f"[file {path}]" in message


def test_bad_environment_value_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOLMBOT_REGISTRY__TIMEOUT_SECONDS", "soon")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "namespace: holm\n"))
    assert "registry.timeout_seconds" in str(caught.value)
    assert "[environment HOLMBOT_REGISTRY__TIMEOUT_SECONDS]" in str(caught.value)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "namespace: A\nbackup:\n  timeout_seconds: 0\n")
    message = error_of(path)
    assert "namespace" in message
    assert "backup.timeout_seconds" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: [1,\n b: 2", "is not valid YAML at line"),
        ("- just\n- a list\n", "must be a mapping of sections"),
        # PyYAML would keep the second and silently drop the first block's grants
        (
            "access:\n  roles: {admin: {users: ['console:bob']}}\nnamespace: holm\n"
            "access:\n  channels: {slack: [C1]}\n",
            "is not valid YAML at line 4, column 1: 'access' is given twice",
        ),
    ],
)
def test_unreadable_files(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    message = error_of(path)
    assert str(path) in message
    assert expected in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    assert error_of(path) == (f"config file {path} not found")


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")) == Config()


def test_sections_can_be_added_by_subclassing(tmp_path: Path) -> None:
    from pydantic import BaseModel, SecretStr

    class Slack(BaseModel):
        bot_token: SecretStr

    class BotConfig(Config):
        slack: Slack | None = None

    config = load_config(write(tmp_path, "slack:\n  bot_token: xoxb-secret\n"), model=BotConfig)
    assert config.slack is not None
    assert config.slack.bot_token.get_secret_value() == "xoxb-secret"
    assert "xoxb-secret" not in repr(config)


def test_home_is_expanded_in_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    config = load_config(write(tmp_path, "kubernetes:\n  kubeconfig: ~/.kube/config\n"))
    assert config.kubernetes.kubeconfig == tmp_path / ".kube" / "config"
    monkeypatch.setenv("HOLMBOT_STATE_DIR", "~/state")
    assert load_config(None).state_dir == tmp_path / "state"


@pytest.mark.parametrize(
    "url", ["http://ops:s3cret@backup.holm:8080", "ops:s3cret@backup.holm:8080"]
)
def test_credentials_in_service_urls_are_refused(tmp_path: Path, url: str) -> None:
    path = tmp_path / "holmbot.yaml"
    path.write_text(f"backup: {{url: '{url}'}}\n")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert "backup.url" in str(refused.value)
    assert "credentials" in str(refused.value)
    assert "s3cret" not in str(refused.value)


def test_a_bad_value_of_a_secret_looking_setting_is_never_echoed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class WithSecrets(Config):
        api_token: int = 0
        signing_key: list[int] = []

    monkeypatch.setenv("HOLMBOT_API_TOKEN", "xoxb-not-a-number")
    monkeypatch.setenv("HOLMBOT_SIGNING_KEY", '["s3cr3t"]')
    monkeypatch.setenv("HOLMBOT_NAMESPACE", "Not_A_Name")
    with pytest.raises(ConfigError) as raised:
        load_config(None, model=WithSecrets)
    message = str(raised.value)
    assert "api_token: Input should be a valid integer" in message
    assert "environment HOLMBOT_API_TOKEN" in message
    assert "signing_key" in message
    assert "xoxb-not-a-number" not in message and "s3cr3t" not in message
    assert "'Not_A_Name' is not a Kubernetes name" in message  # other values still help
