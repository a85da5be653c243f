"""Where an outcome is shown: an interaction's response, a reply to a message, a channel.

An interaction is answered once and within Discord's 3 seconds: if the work is done within
`QUICK_SECONDS` the answer is the response itself (ephemeral when the reply is private);
otherwise the interaction is deferred ("thinking...") and the answer replaces it. A private
reply after a public deferral deletes the "thinking" message and follows up ephemerally. A
message command is answered with a reply; a private reply there is short plain text, since
Discord has no ephemeral replies to messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Protocol

import discord

from bot.discord.embeds import DEFAULT_FILE_LIMIT, NO_MENTIONS, render, short
from commands.core.models import Outcome, Reply

QUICK_SECONDS = 1.0  # answer directly when the work is done by then; else defer


class Answer(Protocol):
    """Shows a reply where the command came from; the message, when it can be edited
    and reacted to later (None for private replies)."""

    async def show(self, reply: Reply, content: str | None = None) -> discord.Message | None: ...


class InteractionAnswer:
    """The response to one interaction (slash command or button click)."""

    def __init__(self, interaction: discord.Interaction[Any]) -> None:
        self.interaction = interaction
        self.deferred = False

    async def run(self, work: Awaitable[Outcome]) -> Outcome:
        """Await `work`, deferring the interaction if it takes longer than `QUICK_SECONDS`."""
        task = asyncio.ensure_future(work)
        done, _ = await asyncio.wait({task}, timeout=QUICK_SECONDS)
        if not done and not self.interaction.response.is_done():
            await self.interaction.response.defer(thinking=True)
            self.deferred = True
        return await task

    async def show(self, reply: Reply, content: str | None = None) -> discord.Message | None:
        interaction = self.interaction
        rendered = render(reply, content=content, file_limit=interaction.filesize_limit)
        if not interaction.response.is_done():
            kwargs = rendered.send_kwargs()
            await interaction.response.send_message(ephemeral=reply.private, **kwargs)
            return None if reply.private else await interaction.original_response()
        if reply.private:
            await interaction.delete_original_response()
            await interaction.followup.send(ephemeral=True, **rendered.send_kwargs())
            return None
        return await interaction.edit_original_response(**rendered.edit_kwargs())

    async def nothing(self) -> None:
        """A duplicate delivery: nothing to say; a deferral is taken back."""
        if self.deferred:
            await self.interaction.delete_original_response()


class MessageAnswer:
    """A reply to a prefix (or mention) message command."""

    def __init__(self, message: discord.Message) -> None:
        self.message = message

    async def show(self, reply: Reply, content: str | None = None) -> discord.Message | None:
        if reply.private:
            await self.message.reply(
                short(reply), mention_author=False, allowed_mentions=NO_MENTIONS
            )
            return None
        guild = self.message.guild
        limit = guild.filesize_limit if guild is not None else DEFAULT_FILE_LIMIT
        rendered = render(reply, content=content, file_limit=limit)
        return await self.message.reply(mention_author=False, **rendered.send_kwargs())


class ChannelAnswer:
    """A new message in a channel (or thread): what the bot says on its own."""

    def __init__(self, channel: discord.abc.Messageable) -> None:
        self.channel = channel

    async def show(self, reply: Reply, content: str | None = None) -> discord.Message | None:
        return await self.channel.send(**render(reply, content=content).send_kwargs())
