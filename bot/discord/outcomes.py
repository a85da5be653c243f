"""What follows an answer: request messages, progress messages and final results.

A reply that opens an approval request is bound to its message (so reactions, buttons and
later notices find it) and gets the approve and deny reactions to click. An operation gets one
progress message, a reply to the command's answer posted with the bot token (an interaction
token lasts 15 minutes, a rollout may not), bound to the operation and edited in place; its
final result is then a reply to that message that mentions the requester.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from datetime import UTC, datetime
from typing import Any

import discord

from bot.discord.answers import Answer
from bot.discord.embeds import render
from bot.discord.identity import mention_key, message_ref, where
from bot.discord.options import Timings
from bot.discord.progress import LiveMessage, Message, progress_reply
from bot.settings import DiscordConfig
from commands.core.models import FinalResult, MessageRef, Outcome, Progress, Reply
from commands.flow.layer import CommandLayer

log = logging.getLogger(__name__)
SETTLE_SECONDS = 2.0  # closing waits this long for edits already due


class Outcomes:
    """Shows outcomes on Discord and follows their operations to the end."""

    def __init__(self, layer: CommandLayer, config: DiscordConfig, timings: Timings) -> None:
        self.layer = layer
        self.config = config
        self.timings = timings
        self.client: discord.Client | None = None  # the connected client (set by the adapter)
        self._tasks: set[asyncio.Task[None]] = set()
        self._live: set[LiveMessage] = set()  # progress messages being followed

    def connected(self) -> discord.Client:
        if self.client is None:
            raise RuntimeError("the Discord client is not connected")
        return self.client

    def ref(self, message: Message) -> MessageRef:
        """The layer's reference to a message the bot posted."""
        channel_id = message.channel.id
        return message_ref(self.connected().get_channel(channel_id), channel_id, message.id)

    def message(self, ref: MessageRef) -> discord.PartialMessage:
        channel = self.connected().get_partial_messageable(where(ref))
        return channel.get_partial_message(int(ref.message_id))

    async def deliver(self, answer: Answer, outcome: Outcome, requester: str | None) -> None:
        """Show `outcome` through `answer`; bind a request message; follow an operation in a
        reply to the answer. `requester` (`discord:ID`) is mentioned with the final result."""
        if outcome.duplicate:
            return
        message = await answer.show(outcome.reply)
        if message is None:
            return
        if outcome.request_id is not None:
            await self.request_posted(message, outcome.request_id)
        if outcome.progress is not None and outcome.operation_id is not None:
            header = outcome.reply
            start = render(progress_reply(header, None, 0.0))
            progress = await message.reply(mention_author=False, **start.send_kwargs())
            await self.layer.bind_message(self.ref(progress), operation_id=outcome.operation_id)
            self.spawn(
                self.follow(progress, header, outcome.progress, outcome.operation_id, requester)
            )

    async def request_posted(self, message: Message, request_id: str) -> None:
        """Bind a request message and put the vote reactions on it to click."""
        await self.layer.bind_message(self.ref(message), request_id=request_id)
        for emoji in (self.config.approve_emoji, self.config.deny_emoji):
            try:
                await message.add_reaction(emoji)
            except discord.HTTPException as error:  # the buttons still work
                log.warning("could not react on request message %s: %s", message.id, error)

    async def edit(self, ref: MessageRef, reply: Reply) -> None:
        """Redraw a message the bot posted (a request message on a vote or expiry)."""
        try:
            await self.message(ref).edit(**render(reply).edit_kwargs())
        except discord.HTTPException as error:
            log.warning("could not edit message %s: %s", ref.message_id, error)

    async def follow(
        self,
        message: Message,
        header: Reply,
        progress: AsyncIterator[Progress],
        operation_id: str,
        requester: str | None,
    ) -> None:
        """Show an operation's progress in `message` (or a fresh one when it grows old) until
        its final result, then reply to it with the result, mentioning `requester`."""
        channel = message.channel

        async def repost(rendered: Any) -> Message:
            fresh = await channel.send(**rendered.send_kwargs())
            await self.layer.bind_message(self.ref(fresh), operation_id=operation_id)
            return fresh

        started = await self._started_at(operation_id)
        live = LiveMessage(message, repost, self.timings.fresh_after)
        self._live.add(live)
        final: FinalResult | None = None
        try:
            async for item in progress:
                elapsed = (datetime.now(UTC) - started).total_seconds()
                live.show(render(progress_reply(header, item, elapsed)))
                if isinstance(item, FinalResult):
                    final = item
            shown = await live.settle()
        finally:
            self._live.discard(live)
        if final is None or final.reason == "cancelled":
            return  # the bot is stopping: the next start follows it again in this message
        rendered = render(final.reply(), content=mention_key(requester))
        await shown.reply(mention_author=False, **rendered.send_kwargs())

    async def _started_at(self, operation_id: str) -> datetime:
        stored = await self.layer.state.get_operation(operation_id)
        started = stored.started_at if stored is not None else datetime.now(UTC)
        return started if started.tzinfo else started.replace(tzinfo=UTC)

    # --- background work ----------------------------------------------------------------------

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in the background; failures are logged; `close` cancels it."""

        async def guarded() -> None:
            try:
                await work
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
        """Stop following; give the edits already due a moment to go out."""
        live = list(self._live)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if live:
            settling = asyncio.gather(*(message.settle() for message in live))
            with contextlib.suppress(TimeoutError, discord.HTTPException):
                await asyncio.wait_for(settling, SETTLE_SECONDS)
