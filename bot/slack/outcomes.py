"""Showing outcomes on Slack: replies, private replies, request messages, progress messages.

- A reply is posted with `chat.postMessage` (in the thread it came from); what does not fit
  goes up with `files_upload_v2` in the message's thread.
- A private reply (a refusal, a vote that does not count) is ephemeral: `chat.postEphemeral`,
  seen by the asker only. Slack has no ephemeral files, so it shows its newest lines only.
- A reply that opens an approval request is bound to its message, so reactions and later
  notices find it, and gets the approve and deny reactions to click.
- An operation gets one message: its command's reply with the progress below, posted once,
  bound to the operation, and edited through `LiveMessage`; its final result is also posted in
  the message's thread, mentioning the requester.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.slack.api import NOT_A_MEMBER, SlackApi, error_code
from bot.slack.blocks import Block, Rendered, context, render
from bot.slack.identity import Channels
from bot.slack.options import SlackOptions
from bot.slack.progress import Editors, progress_message
from commands.core.models import (
    FinalResult,
    MessageRef,
    Outcome,
    Platform,
    Progress,
    Reply,
    mention,
)
from commands.flow.layer import CommandLayer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Place:
    """Where to answer: a channel, a thread in it, and who asked (for private replies)."""

    channel: str
    thread: str | None = None
    user: str | None = None  # a Slack user id


class Outcomes:
    """Shows outcomes in Slack and follows their operations to the end."""

    def __init__(
        self,
        layer: CommandLayer,
        api: SlackApi,
        channels: Channels,
        options: SlackOptions,
    ) -> None:
        self.layer = layer
        self.api = api
        self.channels = channels
        self.options = options
        self.editors = Editors(api, options.edit_interval)
        self._tasks: set[asyncio.Task[None]] = set()

    async def deliver(self, outcome: Outcome, place: Place, requester: str | None) -> None:
        """Show `outcome` at `place`; `requester` (`slack:U…`) is mentioned with a result."""
        if outcome.duplicate:
            return
        reply = outcome.reply
        if reply.private:
            await self.tell(place, reply)
        elif outcome.progress is not None and outcome.operation_id is not None:
            ts = await self.start_progress(place, reply, outcome.operation_id)
            if ts is not None:
                self.spawn(
                    self.follow(place, ts, reply, outcome.progress, outcome.operation_id, requester)
                )
        elif outcome.request_id is not None:
            ts = await self.post(place, reply, extra=self.invitation(reply))
            if ts is not None:
                await self.request_posted(place, ts, outcome.request_id)
        else:
            await self.post(place, reply)

    # --- messages ---------------------------------------------------------------------------

    async def post(
        self, place: Place, reply: Reply, extra: list[Block] | None = None
    ) -> str | None:
        """Post `reply` (and its file when cut); the message's ts, None if it could not go."""
        rendered = render(reply, extra=extra)
        ts = await self._post(place, rendered)
        if ts is not None and rendered.file is not None:
            try:
                await self.api.call(
                    "files_upload_v2",
                    channel=place.channel,
                    thread_ts=place.thread or ts,
                    content=rendered.file.content,
                    filename=rendered.file.filename,
                    title=rendered.file.filename,
                    initial_comment=f"all of it: {rendered.file.filename}",
                )
            except SlackApiError as error:
                log.warning("uploading %s failed: %s", rendered.file.filename, error_code(error))
        return ts

    async def _post(self, place: Place, rendered: Rendered) -> str | None:
        try:
            answer = await self.api.call(
                "chat_postMessage",
                channel=place.channel,
                thread_ts=place.thread,
                unfurl_links=False,
                unfurl_media=False,
                **rendered.message(),
            )
        except SlackApiError as error:
            code = error_code(error)
            if code in NOT_A_MEMBER:
                self.channels.left(place.channel)
                log.warning("cannot post in %s: holmbot is not a member (%s)", place.channel, code)
            else:
                log.warning("posting in %s failed: %s", place.channel, code or error)
            return None
        return str(answer["ts"])

    async def tell(self, place: Place, reply: Reply) -> None:
        """A private reply, seen only by `place.user`."""
        if place.user is None:
            log.info("a private reply with no one to tell: %s", reply.title)
            return
        try:
            await self.api.call(
                "chat_postEphemeral",
                channel=place.channel,
                user=place.user,
                thread_ts=place.thread,
                **render(reply, files=False).message(),
            )
        except SlackApiError as error:
            log.warning("telling %s privately failed: %s", place.user, error_code(error))

    def edit(self, ref: MessageRef, reply: Reply, *, request: bool = False) -> None:
        """Redraw a message the bot posted (`request`: a request message, on a vote or
        expiry)."""
        extra = self.invitation(reply) if request else None
        self.editors.edit(ref.channel, ref.message_id, render(reply, files=False, extra=extra))

    def invitation(self, reply: Reply) -> list[Block]:
        """Under a pending request (one with buttons): how to vote by reaction."""
        if not reply.actions:
            return []
        approve, deny = self.options.approve_reaction, self.options.deny_reaction
        return [context(f"or react with :{approve}: to approve, :{deny}: to deny")]

    async def request_posted(self, place: Place, ts: str, request_id: str) -> None:
        """Bind a request message and put the vote reactions on it to click."""
        ref = MessageRef(
            platform=Platform.SLACK, channel=place.channel, message_id=ts, thread=place.thread
        )
        await self.layer.bind_message(ref, request_id=request_id)
        for name in (self.options.approve_reaction, self.options.deny_reaction):
            try:
                await self.api.call("reactions_add", channel=place.channel, timestamp=ts, name=name)
            except SlackApiError as error:  # buttons still work
                log.warning("could not react on request message %s: %s", ts, error_code(error))

    # --- operations -------------------------------------------------------------------------

    async def start_progress(self, place: Place, header: Reply, operation_id: str) -> str | None:
        """Post an operation's message and bind it; its ts."""
        ts = await self._post(place, progress_message(header, None, 0.0))
        if ts is None:
            return None
        self.editors.of(place.channel, ts, touched_at=time.monotonic())
        ref = MessageRef(
            platform=Platform.SLACK, channel=place.channel, message_id=ts, thread=place.thread
        )
        await self.layer.bind_message(ref, operation_id=operation_id)
        return ts

    async def follow(
        self,
        place: Place,
        ts: str,
        header: Reply,
        progress: AsyncIterator[Progress],
        operation_id: str,
        requester: str | None,
    ) -> None:
        """Edit message `ts` with each state of the operation, then post its final result in
        the message's thread, mentioning the requester."""
        started = await self._started_at(operation_id)
        live = self.editors.of(place.channel, ts)
        final: FinalResult | None = None
        async for item in progress:
            elapsed = (datetime.now(UTC) - started).total_seconds()
            live.show(progress_message(header, item, elapsed))
            if isinstance(item, FinalResult):
                final = item
        await live.settle()
        if final is None or final.reason == "cancelled":
            return  # the bot is stopping: the next start follows it again in this message
        result = final.reply()
        if requester is not None:
            result = result.model_copy(update={"lines": [f"for {mention(requester)}"]})
        await self.post(Place(place.channel, thread=place.thread or ts), result)

    async def _started_at(self, operation_id: str) -> datetime:
        stored = await self.layer.state.get_operation(operation_id)
        started = stored.started_at if stored is not None else datetime.now(UTC)
        return started if started.tzinfo else started.replace(tzinfo=UTC)

    # --- background work ----------------------------------------------------------------------

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in the background (a failure is logged); `close` cancels it."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("following an outcome on Slack failed", exc_info=error)

    @property
    def busy(self) -> bool:
        return bool(self._tasks)

    async def idle(self) -> None:
        """Wait until every followed operation and every edit has been shown."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.editors.settle()

    async def close(self) -> None:
        self.editors.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
