"""What the Slack adapter reads from the `slack` config section, plus its timings.

The timings are not config settings: they follow Slack's limits (ack within 3 s, about one
edit per second per message, Tier 2 for user groups) and are only made shorter by tests.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

COMMANDS_PATH = "/slack/events"  # where HTTP mode takes commands, events and clicks


class SlackOptions(BaseModel):
    """The Slack adapter's settings: the `slack` config section plus timings."""

    model_config = ConfigDict(frozen=True, extra="ignore", from_attributes=True)

    bot_token: SecretStr
    app_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    mode: Literal["socket", "http"] = "socket"
    http_host: str = "0.0.0.0"
    http_port: int = Field(default=3000, ge=0, le=65535)  # 0: any free port (tests)
    api_url: str = "https://slack.com/api/"
    approve_reaction: str = "white_check_mark"
    deny_reaction: str = "x"
    # Slack wants an ack within 3 s: a command's answer is waited for this long before the
    # ack, so bad input is answered in the ack itself.
    ack_seconds: float = Field(default=2.0, gt=0, lt=3)
    edit_interval: float = Field(default=1.0, gt=0)  # at most one edit per message per this
    groups_ttl: float = Field(default=300.0, gt=0)  # user group members are cached this long
    channels_ttl: float = Field(default=60.0, gt=0)  # "not a member" is cached this long
    ping_interval: float = Field(default=10.0, gt=0)  # slack-sdk's WebSocket ping interval
    watchdog_interval: float = Field(default=5.0, gt=0)  # how often the watchdog looks
    hello_timeout: float = Field(default=20.0, gt=0)  # a new connection says hello within this
    start_timeout: float = Field(default=30.0, gt=0)  # the first hello arrives within this

    @classmethod
    def of(cls, section: Any, **timings: Any) -> SlackOptions:
        """Options from a config's `slack` section (a model or a mapping)."""
        return cls.model_validate({**dict(section), **timings})

    def missing(self) -> list[str]:
        """The credentials this mode needs and lacks."""
        needed = "app_token" if self.mode == "socket" else "signing_secret"
        return [] if getattr(self, needed) is not None else [needed]
