"""What follows an answer: request messages, progress messages and final results.

A reply that opens an approval request is bound to its message (so reactions and later
notices find it) and gets the ✅ / ❌ reactions to click. An operation gets one progress
message in the channel, posted with the bot token (an interaction token lasts 15 minutes, a
rollout may not) and edited in place; its final result is then a reply to that message that
mentions the requester.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import discord

from bot.discord.answers import Answer
from bot.discord.embeds import render
from bot.discord.identity import message_ref, where
from bot.discord.options import DiscordOptions
from bot.discord.progress import LiveMessage, progress_reply
from commands.core.models import FinalResult, MessageRef, Outcome, Progress, Reply
from commands.flow.layer import CommandLayer

log = logging.getLogger(__name__)


class Outcomes:
    """Shows outcomes on Discord and follows their operations to the end."""

    def __init__(self, layer: CommandLayer, options: DiscordOptions) -> None:
        self.layer = layer
        self.options = options
        self.client: discord.Client | None = None  # the connected client (set by the adapter)
        self._tasks: set[asyncio.Task[None]] = set()
        self.live: dict[str, LiveMessage] = {}  # operation id -> its progress message

    def _client(self) -> discord.Client:
        if self.client is None:
            raise RuntimeError("the Discord client is not connected")
        return self.client

    def ref(self, channel_id: int, message_id: int) -> MessageRef:
        """The layer's reference to a message in a channel (or thread) of the guild."""
        return message_ref(self._client().get_channel(channel_id), channel_id, message_id)

    async def deliver(
        self, answer: Answer, outcome: Outcome, *, place: int, requester: str | None
    ) -> None:
        """Show `outcome` through `answer`; follow its operation in channel `place`."""
        message = await answer.show(outcome.reply)
        if message is not None and outcome.request_id is not None:
            await self.request_posted(message, outcome.request_id)
        if outcome.progress is not None and outcome.operation_id is not None:
            self.spawn(
                self.follow(
                    place,
                    outcome.progress,
                    outcome.operation_id,
                    title=outcome.reply.title,
                    requester=requester,
                )
            )

    async def request_posted(self, message: discord.Message, request_id: str) -> None:
        """Bind a request message and put the vote reactions on it."""
        await self.layer.bind_message(
            self.ref(message.channel.id, message.id), request_id=request_id
        )
        for emoji in (self.options.approve_emoji, self.options.deny_emoji):
            try:
                await message.add_reaction(emoji)
            except discord.HTTPException as error:  # buttons still work
                log.warning("could not react on request message %s: %s", message.id, error)

    async def edit(self, ref: MessageRef, reply: Reply) -> None:
        """Redraw a message the bot posted (a request message on a vote or expiry)."""
        channel = self._client().get_partial_messageable(where(ref))
        message = channel.get_partial_message(int(ref.message_id))
        try:
            await message.edit(**render(reply).edit_kwargs())
        except discord.HTTPException as error:
            log.warning("could not edit message %s: %s", ref.message_id, error)

    async def follow(
        self,
        place: int,
        progress: AsyncIterator[Progress],
        operation_id: str,
        *,
        title: str,
        requester: str | None,
        existing: MessageRef | None = None,
    ) -> None:
        """Show an operation's progress in one message (`existing`, or a new one in channel
        `place`) until its final result, then reply to it with the result."""
        channel = self._client().get_partial_messageable(place)

        async def post(rendered: Any) -> discord.Message:
            message = await channel.send(**rendered.send_kwargs())
            ref = self.ref(place, message.id)
            await self.layer.bind_message(ref, operation_id=operation_id)
            return message

        start = render(progress_reply_start(title))
        if existing is not None:
            message: Any = channel.get_partial_message(int(existing.message_id))
        else:
            message = await post(start)
        live = self.live[operation_id] = LiveMessage(message, post)
        final: FinalResult | None = None
        try:
            async for item in progress:
                live.show(render(progress_reply(item, title)))
                if isinstance(item, FinalResult):
                    final = item
            shown = await live.settle()
        finally:
            self.live.pop(operation_id, None)
        if final is not None and final.reason != "cancelled":
            await self.final(shown, final, requester)

    async def final(self, message: Any, final: FinalResult, requester: str | None) -> None:
        """The final result as a reply to the progress message, mentioning the requester."""
        rendered = render(final.reply(), content=requester)
        await message.reply(mention_author=False, **rendered.send_kwargs())

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in the background; failures are logged; `close` cancels it."""

        async def guarded() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("following an outcome on Discord failed")

        task = asyncio.create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def idle(self) -> None:
        """Wait until every followed operation has been shown to its end."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def progress_reply_start(title: str) -> Reply:
    """The progress message before the first update."""
    return Reply(title=title, lines=["starting…"])
