"""Where an outcome is shown: an interaction's response, a reply to a message, a channel.

An interaction is answered once and within Discord's 3 seconds. A command that will run is
deferred ("thinking…") before it starts, so a burst of commands is acknowledged at once, and
its answer fills that message in; one answered at once (bad input, a refusal, a vote) is
answered by the response itself, ephemeral when private, unless it takes longer than
`defer_after` after all. A
private reply after a public deferral deletes the "thinking" message and follows up
ephemerally. A message command is answered with a reply; a private reply there is short plain
text, since Discord has no ephemeral replies to messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Protocol

import discord

from bot.discord.embeds import DEFAULT_FILE_LIMIT, NO_MENTIONS, render, short
from commands.core.models import Outcome, Reply


class Answer(Protocol):
    """Shows a reply where the command came from; returns the message when it can be edited
    and reacted to later (None for private replies)."""

    async def show(self, reply: Reply) -> discord.Message | None: ...


class InteractionAnswer:
    """The response to one interaction (slash command or button click)."""

    def __init__(self, interaction: discord.Interaction[Any], defer_after: float) -> None:
        self.interaction = interaction
        self.defer_after = defer_after

    async def defer(self) -> None:
        """Say "thinking…" (the answer fills it in later), unless already answered."""
        if not self.interaction.response.is_done():
            await self.interaction.response.defer(thinking=True)

    async def run(self, work: Awaitable[Outcome]) -> Outcome:
        """Await `work`, deferring the interaction if it takes longer than `defer_after`."""
        task = asyncio.ensure_future(work)
        done, _ = await asyncio.wait({task}, timeout=self.defer_after)
        if not done:
            await self.defer()
        return await task

    async def show(self, reply: Reply) -> discord.Message | None:
        interaction = self.interaction
        rendered = render(reply, file_limit=interaction.filesize_limit)
        if not interaction.response.is_done():
            sent = await interaction.response.send_message(
                ephemeral=reply.private, **rendered.send_kwargs()
            )
            message = sent.resource
            return message if isinstance(message, discord.Message) and not reply.private else None
        if reply.private:
            await interaction.delete_original_response()
            await interaction.followup.send(ephemeral=True, **rendered.send_kwargs())
            return None
        return await interaction.edit_original_response(**rendered.edit_kwargs())


class MessageAnswer:
    """A reply to a prefix (or mention) message command."""

    def __init__(self, message: discord.Message) -> None:
        self.message = message

    async def show(self, reply: Reply) -> discord.Message | None:
        if reply.private:
            await self.message.reply(
                short(reply), mention_author=False, allowed_mentions=NO_MENTIONS
            )
            return None
        guild = self.message.guild
        limit = guild.filesize_limit if guild is not None else DEFAULT_FILE_LIMIT
        rendered = render(reply, file_limit=limit)
        return await self.message.reply(mention_author=False, **rendered.send_kwargs())


class ChannelAnswer:
    """A new message in a channel (or thread), or a reply to `reply_to` there: what the bot
    says on its own."""

    def __init__(
        self,
        channel: discord.abc.Messageable,
        reply_to: discord.PartialMessage | None = None,
    ) -> None:
        self.channel = channel
        self.reply_to = reply_to

    async def show(self, reply: Reply) -> discord.Message | None:
        kwargs = render(reply).send_kwargs()
        if self.reply_to is not None:
            kwargs["reference"] = self.reply_to.to_reference(fail_if_not_exists=False)
            kwargs["mention_author"] = False
        return await self.channel.send(**kwargs)
