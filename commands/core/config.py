"""holmbot's configuration: a YAML file, overridden by `HOLMBOT_*` environment variables.

Environment names follow the YAML path with `__` between levels: `HOLMBOT_NAMESPACE`,
`HOLMBOT_BACKUP__URL`, `HOLMBOT_ROLLOUT__AUTO_ROLLBACK`. Lists take JSON or commas
(`HOLMBOT_PROTECTED_SERVICES=postgres,gateway`). `load_config` turns every problem into one
`ConfigError` that names the file (or variable) and the field.
"""

from __future__ import annotations

import os
import re
import string
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from commands.access.policy import AccessConfig
from commands.core.parser import DNS1123_LABEL

ENV_PREFIX = "HOLMBOT_"
ENV_NESTED_DELIMITER = "__"
CONFIG_PATH_ENV = "HOLMBOT_CONFIG"
SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
TEMPLATE_KEYS = frozenset({"service", "namespace", "port"})

Seconds = Annotated[float, Field(gt=0)]


class ConfigError(Exception):
    """The configuration cannot be used; the message names the source and the field."""


def _http_url(value: str) -> str:
    """An absolute http(s) URL, without a trailing slash."""
    value = value.strip().rstrip("/")
    authority = value.split("://", 1)[-1].split("/", 1)[0]
    if "@" in authority:  # checked first: the value is echoed in errors, replies and logs
        raise ValueError("must not carry credentials (user:password@); URLs are shown in replies")
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
    return value


def _dns_label(value: str) -> str:
    if not DNS1123_LABEL.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a Kubernetes name (lowercase letters, digits and '-', "
            "at most 63 characters, starting and ending with a letter or digit)"
        )
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KubernetesConfig(_Section):
    """How to reach the Kubernetes API."""

    kubeconfig: Path | None = None
    context: str | None = None
    in_cluster: bool | None = None  # None: in-cluster when the service-account token exists
    request_timeout_seconds: Seconds = 10.0
    max_concurrent_calls: int = Field(default=8, ge=1, le=64)  # threads for Kubernetes calls

    @field_validator("kubeconfig")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    def use_in_cluster(self, token_path: Path = SERVICE_ACCOUNT_TOKEN) -> bool:
        """Whether to use the pod's service account rather than a kubeconfig."""
        if self.in_cluster is not None:
            return self.in_cluster
        return self.kubeconfig is None and token_path.exists()


class RegistryConfig(_Section):
    """The private image registry: `host` goes into image names, `url` is its HTTP API."""

    host: str = "10.110.67.87:5000"
    url: str = "http://10.110.67.87:5000"
    timeout_seconds: Seconds = 5.0

    _check_url = field_validator("url")(_http_url)

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z0-9.-]+(:\d{1,5})?$", value):
            raise ValueError(f"must be HOST or HOST:PORT without a scheme, got {value!r}")
        return value

    def image(self, service: str, tag: str) -> str:
        """`HOST/SERVICE:TAG`, the image reference a Deployment uses."""
        return f"{self.host}/{service}:{tag}"


class BackupConfig(_Section):
    """The backup service API (runbook 4.1/4.2)."""

    url: str = "http://192.168.8.197:30850"
    timeout_seconds: Seconds = 10.0
    poll_interval_seconds: Seconds = 2.0
    operation_timeout_seconds: Seconds = 1800.0

    _check_url = field_validator("url")(_http_url)


class HealthConfig(_Section):
    """Service health probes (runbook 5.1) and the optional health aggregator."""

    aggregator_url: str | None = None
    service_url_template: str = "http://{service}.{namespace}.svc.cluster.local:{port}"
    probe_timeout_seconds: Seconds = 2.0

    @field_validator("aggregator_url")
    @classmethod
    def _check_aggregator(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else _http_url(value)

    @field_validator("service_url_template")
    @classmethod
    def _check_template(cls, value: str) -> str:
        try:
            keys = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        except ValueError as exc:
            raise ValueError(f"is not a valid format string: {exc}") from None
        unknown = keys - TEMPLATE_KEYS
        if unknown:
            raise ValueError(
                f"uses unknown placeholders {sorted(unknown)}; "
                "allowed: {service}, {namespace}, {port}"
            )
        return _http_url(value)

    def service_url(self, service: str, namespace: str, port: int) -> str:
        """The base URL of one service's `/health` and `/ready`."""
        return self.service_url_template.format(service=service, namespace=namespace, port=port)


class RolloutConfig(_Section):
    """Rollout tracking and the runbook's automatic rollback triggers (3.3)."""

    timeout_seconds: Seconds = 600.0
    auto_rollback: Literal["rollback", "approve", "report"] = "rollback"
    restart_threshold: int = Field(default=3, ge=1)
    restart_window_seconds: Seconds = 300.0
    health_failure_seconds: Seconds = 120.0
    # A finished deploy or restart stays watched this long for the triggers (a leak or a
    # flapping health check often shows only after the rollout) before it is reported done.
    verify_seconds: float = Field(default=60.0, ge=0)


class LogsConfig(_Section):
    """What `/logs` may read."""

    # The total read across all pods, shared equally between them (at most 1 MiB a pod); the
    # newest lines are kept. Bounds the bot's memory whatever the number of pods.
    max_total_bytes: int = Field(default=4 << 20, ge=64 << 10, le=64 << 20)


def _default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "holmbot"


class Config(BaseSettings):
    """The whole configuration. Subclass it to add sections; `load_config(model=...)` loads it."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        extra="forbid",
        frozen=True,
    )

    namespace: str = "holm"
    kubernetes: KubernetesConfig = KubernetesConfig()
    registry: RegistryConfig = RegistryConfig()
    backup: BackupConfig = BackupConfig()
    health: HealthConfig = HealthConfig()
    rollout: RolloutConfig = RolloutConfig()
    logs: LogsConfig = LogsConfig()
    protected_services: Annotated[list[str], NoDecode] = Field(default_factory=list)
    access: AccessConfig = AccessConfig()
    state_dir: Path = Field(default_factory=_default_state_dir)

    _check_namespace = field_validator("namespace")(_dns_label)

    @field_validator("protected_services", mode="before")
    @classmethod
    def _split_services(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                try:
                    return yaml.safe_load(value)
                except yaml.YAMLError:
                    raise ValueError(f"{value!r} is not a list such as [postgres, vault]") from None
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("protected_services")
    @classmethod
    def _check_services(cls, value: list[str]) -> list[str]:
        return [_dns_label(name) for name in value]

    @field_validator("state_dir")
    @classmethod
    def _expand_state_dir(cls, value: Path) -> Path:
        return value.expanduser()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init arguments; the environment overrides them.
        return env_settings, init_settings


C = TypeVar("C", bound=Config)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last,
    so a second `access:` block would silently drop the first one's grants)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"config file {path} is not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must be a mapping of sections, got {type(data).__name__}"
        )
    return data


def _env_name(loc: tuple[str | int, ...]) -> str:
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(str(part) for part in loc).upper()


SECRET_WORDS = ("token", "secret", "password", "key")


def _may_be_secret(loc: tuple[str | int, ...]) -> bool:
    """Whether a field's value must never be echoed (tokens, signing secrets, ...)."""
    return any(word in str(part).lower() for part in loc for word in SECRET_WORDS)


def _describe(error: Any, path: Path | None) -> str:
    """One validation error as `field: problem (source)`."""
    loc = tuple(error["loc"])
    field = ".".join(str(part) for part in loc) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown setting (check the spelling)"
    elif (
        error["type"] not in {"missing", "value_error"}
        and not isinstance(error["input"], dict)
        and not _may_be_secret(loc)
    ):
        message += f" (got {error['input']!r})"
    # Name the variable when the bad value came from the environment.
    env_names = [_env_name(loc[:n]) for n in range(len(loc), 0, -1)]
    env = next((name for name in env_names if name in os.environ), None)
    source = f"environment {env}" if env else f"file {path}" if path else "defaults"
    return f"{field}: {message} [{source}]"


def load_config(path: Path | None = None, *, model: type[C] = Config) -> C:  # type: ignore[assignment]
    """Load the YAML file at `path` (or `$HOLMBOT_CONFIG`, or none) and the environment."""
    if path is None and os.environ.get(CONFIG_PATH_ENV):
        path = Path(os.environ[CONFIG_PATH_ENV])
    data = _read_yaml(path) if path is not None else {}
    try:
        return model(**data)
    except ValidationError as exc:
        where = f"config file {path}" if path else "configuration"
        problems = "".join(f"\n  {_describe(error, path)}" for error in exc.errors())
        raise ConfigError(f"invalid {where}:{problems}") from None
    except SettingsError as exc:
        raise ConfigError(
            f"invalid environment setting ({exc}); whole sections set through "
            f"{ENV_PREFIX}SECTION must be JSON objects"
        ) from None
