"""What the Discord adapter reads from the `discord` config section, with its own defaults.

Settings the config section does not (yet) have fall back to the defaults here, so the adapter
runs on any `BotConfig` whose `discord` section carries at least the token and the guild.
"""

from __future__ import annotations

from typing import Any

import discord
import yarl
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

DEFAULT_API_URL = "https://discord.com/api/v10"
DEFAULT_GATEWAY_URL = "wss://gateway.discord.gg/"

# The bot's permissions, as the invite URL asks for them (docs/discord.md says why each).
PERMISSIONS = discord.Permissions(
    add_reactions=True,  # 1 << 6: the ✅ / ❌ on request messages
    view_channel=True,  # 1 << 10: see the channel's messages and events
    send_messages=True,  # 1 << 11: replies, progress and request messages
    embed_links=True,  # 1 << 14: replies are embeds
    attach_files=True,  # 1 << 15: long output as a file
    read_message_history=True,  # 1 << 16: read reactions of older request messages
    send_messages_in_threads=True,  # 1 << 38: answer commands typed in threads
)


class DiscordOptions(BaseModel):
    """The Discord adapter's settings: the `discord` config section plus defaults."""

    model_config = ConfigDict(frozen=True, extra="ignore", from_attributes=True)

    token: SecretStr
    guild_id: int
    prefix: str = "!"
    api_url: str = DEFAULT_API_URL
    gateway_url: str = DEFAULT_GATEWAY_URL
    message_content: bool = True  # ask for the privileged intent prefix commands need
    approve_emoji: str = "✅"
    deny_emoji: str = "❌"
    guild_ready_timeout: float = Field(default=2.0, gt=0)  # discord.py waits this after READY

    @field_validator("api_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.strip().rstrip("/")

    @classmethod
    def of(cls, section: Any) -> DiscordOptions:
        """Options from a config's `discord` section (a model or a mapping)."""
        if isinstance(section, dict):
            return cls.model_validate(section)
        return cls.model_validate(section, from_attributes=True)

    def gateway(self) -> yarl.URL:
        """The gateway URL as discord.py's `DEFAULT_GATEWAY` wants it."""
        return yarl.URL(self.gateway_url.strip())

    def intents(self, *, message_content: bool) -> discord.Intents:
        """Guilds (channels and roles), guild messages and reactions; the message content
        intent only when asked for."""
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = True
        intents.guild_reactions = True
        intents.message_content = message_content
        return intents


def invite_url(application_id: int) -> str:
    """The URL that adds the bot to a server with the permissions it needs."""
    return discord.utils.oauth_url(
        application_id, permissions=PERMISSIONS, scopes=("bot", "applications.commands")
    )
