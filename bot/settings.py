"""The bot process's configuration: the command layer's `Config` plus chat, probes and logs.

Every setting is also an environment variable (`HOLMBOT_` + its path joined by `__`, e.g.
`HOLMBOT_SLACK__BOT_TOKEN`). Secrets (tokens, the signing secret) are `SecretStr`: never
printed, logged or echoed in a config error. They may also come from files, one per setting,
in `HOLMBOT_SECRETS_DIR` (a Kubernetes Secret mounted as a volume): a file named
`slack__bot_token` holds `HOLMBOT_SLACK__BOT_TOKEN`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, SecretStr, field_validator

from commands.core.config import ENV_PREFIX, Config, ConfigError, _http_url, _Section, load_config

SECRETS_DIR_ENV = "HOLMBOT_SECRETS_DIR"


class SlackConfig(_Section):
    """The Slack app's credentials and how to reach Slack."""

    bot_token: SecretStr | None = None  # xoxb-...
    app_token: SecretStr | None = None  # xapp-..., Socket Mode only
    signing_secret: SecretStr | None = None  # HTTP mode only
    mode: Literal["socket", "http"] = "socket"
    http_port: int = Field(default=3000, ge=1, le=65535)
    api_url: str = "https://slack.com/api/"
    approve_reaction: str = "white_check_mark"
    deny_reaction: str = "x"

    @field_validator("api_url")
    @classmethod
    def _check_api_url(cls, value: str) -> str:
        return _http_url(value) + "/"  # slack-sdk joins method names onto a trailing slash

    def missing(self) -> list[str]:
        """The environment names of the credentials this mode needs and lacks."""
        needed = ["bot_token", "app_token" if self.mode == "socket" else "signing_secret"]
        return [
            f"{ENV_PREFIX}SLACK__{name.upper()}" for name in needed if getattr(self, name) is None
        ]

    @property
    def configured(self) -> bool:
        return not self.missing()


class DiscordConfig(_Section):
    """The Discord bot's token, its guild, and how to reach Discord."""

    token: SecretStr | None = None
    guild_id: int | None = None
    prefix: str = Field(default="!", min_length=1, max_length=5)
    api_url: str = "https://discord.com/api/v10"
    gateway_url: str = "wss://gateway.discord.gg/"
    approve_emoji: str = "✅"
    deny_emoji: str = "❌"

    _check_api_url = field_validator("api_url")(_http_url)

    def missing(self) -> list[str]:
        return [
            f"{ENV_PREFIX}DISCORD__{name.upper()}"
            for name in ("token", "guild_id")
            if getattr(self, name) is None
        ]

    @property
    def configured(self) -> bool:
        return not self.missing()


class ProbesConfig(_Section):
    """Where `/health`, `/ready` and `/metrics` listen."""

    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=0, le=65535)  # 0: any free port (tests)
    # /ready fails when the Kubernetes API has not answered for this long.
    kubernetes_stale_seconds: float = Field(default=60.0, gt=0)


class LogConfig(_Section):
    """The process's log lines (JSON, one per line, on stderr)."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class BotConfig(Config):
    """Everything `holmbot run` reads."""

    slack: SlackConfig = SlackConfig()
    discord: DiscordConfig = DiscordConfig()
    probes: ProbesConfig = ProbesConfig()
    log: LogConfig = LogConfig()

    def secrets(self) -> list[str]:
        """The secret values set, for the log redaction filter."""
        values = [self.slack.bot_token, self.slack.app_token, self.slack.signing_secret]
        values.append(self.discord.token)
        return [value.get_secret_value() for value in values if value is not None]


def secret_files(directory: Path | None = None) -> dict[str, str]:
    """`HOLMBOT_*` values read from the files in the secrets directory (none if unset).

    The environment wins over a file, so an operator can override a mounted secret.
    """
    directory = directory or (
        Path(os.environ[SECRETS_DIR_ENV]) if os.environ.get(SECRETS_DIR_ENV) else None
    )
    if directory is None or not directory.is_dir():
        return {}
    found: dict[str, str] = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue  # Kubernetes mounts keep ..data symlinks beside the keys
        found[ENV_PREFIX + path.name.upper()] = path.read_text().strip()
    return found


SECRET_SETTINGS = {"slack": ("bot_token", "app_token", "signing_secret"), "discord": ("token",)}


def load_bot_config(path: Path | None = None) -> BotConfig:
    """The YAML file, the secrets directory's files and the environment, as a `BotConfig`.

    Secrets in the YAML are refused: the file is a ConfigMap, readable by anyone who can
    read the namespace's config.
    """
    if path is None and os.environ.get("HOLMBOT_CONFIG"):
        path = Path(os.environ["HOLMBOT_CONFIG"])
    if path is not None and path.is_file():
        _refuse_secrets_in(path)
    for name, value in secret_files().items():
        os.environ.setdefault(name, value)
    return load_config(path, model=BotConfig)


def _refuse_secrets_in(path: Path) -> None:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return  # load_config reports it with the line and column
    if not isinstance(data, dict):
        return
    for section, names in SECRET_SETTINGS.items():
        given = data.get(section)
        for name in names:
            if isinstance(given, dict) and name in given:
                env = f"{ENV_PREFIX}{section.upper()}__{name.upper()}"
                raise ConfigError(
                    f"config file {path}: {section}.{name} is a secret and is not read from the "
                    f"config file; set {env} or put it in a file in ${SECRETS_DIR_ENV}"
                )
