"""What the Discord adapter asks of Discord: intents, permissions, and its timings.

The settings themselves are `bot.settings.DiscordConfig` (token, guild, prefix, REST and
gateway URLs, vote emoji); `Timings` holds the adapter's own waits, test-sized in tests.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import discord

# The bot's permissions, as the invite URL asks for them (docs/discord.md says why each).
PERMISSIONS = discord.Permissions(
    add_reactions=True,  # 1 << 6: the approve / deny reactions on request messages
    view_channel=True,  # 1 << 10: see the channel's messages and events
    send_messages=True,  # 1 << 11: replies, progress and request messages
    embed_links=True,  # 1 << 14: replies are embeds
    attach_files=True,  # 1 << 15: long output as a file
    read_message_history=True,  # 1 << 16: read reactions of older request messages
    send_messages_in_threads=True,  # 1 << 38: answer commands typed in threads
)
# What a channel must allow the bot before a command there may start anything.
NEEDED_IN_CHANNEL = ("view_channel", "send_messages", "embed_links")


@dataclass(frozen=True)
class Timings:
    """The adapter's waits (seconds unless said otherwise)."""

    # discord.py's READY waits this after the last GUILD_CREATE. holmbot serves one guild and
    # starts its session (takes commands, reconciles votes) as soon as that guild is in; only
    # telling that the bot is not a member of it waits this long.
    guild_ready_timeout: float = 0.5
    start_timeout: float = 60.0  # READY and the guild must arrive within this
    defer_after: float = 1.0  # an interaction still working by then is deferred
    fresh_after: datetime.timedelta = datetime.timedelta(minutes=55)  # edits of older: capped
    completion_timeout: float = 2.0  # an autocomplete answer is due within 3 s too


def intents(*, message_content: bool) -> discord.Intents:
    """Guilds (channels, threads, roles), guild messages and reactions; the privileged
    message content intent only when the application has it enabled."""
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_messages = True
    wanted.guild_reactions = True
    wanted.message_content = message_content
    return wanted


def content_intent_enabled(flags: discord.ApplicationFlags) -> bool:
    """Whether the application may ask for message content (the Bot page's switch)."""
    return flags.gateway_message_content or flags.gateway_message_content_limited


def invite_url(application_id: int) -> str:
    """The URL that adds the bot to a server with the permissions it needs."""
    return discord.utils.oauth_url(
        application_id, permissions=PERMISSIONS, scopes=("bot", "applications.commands")
    )
