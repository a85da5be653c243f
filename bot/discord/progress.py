"""Progress messages: one per operation, edited in place with a progress bar.

`LiveMessage` sends one edit at a time, at most one per `EDIT_INTERVAL` (a message that
changes faster cannot be read, and Discord's budget of 5 edits per 5 s is per channel, shared
by every operation in it), and keeps only the newest state while it waits; beyond that, the
rate limits discord.py reads from Discord's headers decide (it waits out
`X-RateLimit-Reset-After` and a 429's `retry_after` itself). The last state (the final result)
is never dropped. Discord caps edits of messages over an
hour old (code 30046): a message about to be that old, or one Discord refuses to edit so or no
longer has (10008), is replaced by a fresh message, which `repost` posts and binds.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Awaitable, Callable

import discord

from bot.discord.embeds import Rendered
from bot.render.progress import operation_bar
from commands.core.formatting import human_seconds
from commands.core.models import FinalResult, Phase, Progress, Reply, Tone

log = logging.getLogger(__name__)

EDIT_TOO_OLD = 30046
UNKNOWN_MESSAGE = 10008
EDIT_INTERVAL = 1.0  # seconds between the edits of one message, at least
ATTEMPTS = 5  # tries of one state on errors discord.py does not retry (a newer state goes first)
MAX_PROBLEMS = 10

Message = discord.Message | discord.PartialMessage


def progress_reply(header: Reply, item: Progress | None, elapsed: float) -> Reply:
    """An operation's message: what runs (its command's title), then where it is."""
    if item is None:
        return Reply(title=header.title, lines=["starting…"])
    if isinstance(item, FinalResult):
        ended = "done" if item.ok else "failed"
        why = f" ({item.reason})" if item.reason else ""
        lines = [
            f"{operation_bar(item)}  {ended} after {human_seconds(item.duration_seconds)}{why}",
            item.message,
            f"operation {item.operation_id}",
        ]
        return Reply(title=header.title, tone=Tone.SUCCESS if item.ok else Tone.ERROR, lines=lines)
    lines = [f"{operation_bar(item)}  {item.phase}: {item.message}"]
    if item.desired is not None:
        lines.append(f"{item.updated or 0} updated, {item.available or 0} available")
    lines.extend(f"⚠ {problem}" for problem in item.problems[:MAX_PROBLEMS])
    if len(item.problems) > MAX_PROBLEMS:
        lines.append(f"and {len(item.problems) - MAX_PROBLEMS} more")
    lines.append(f"operation {item.operation_id} · step {item.seq} · {human_seconds(elapsed)}")
    warn = item.phase is Phase.ROLLING_BACK or item.problems
    return Reply(title=header.title, tone=Tone.WARNING if warn else Tone.INFO, lines=lines)


def age(message: Message) -> datetime.timedelta:
    return discord.utils.utcnow() - discord.utils.snowflake_time(message.id)


class LiveMessage:
    """A message that shows the newest of the states given to `show`."""

    def __init__(
        self,
        message: Message,
        repost: Callable[[Rendered], Awaitable[Message]],
        fresh_after: datetime.timedelta,
    ) -> None:
        self.message = message
        self._repost = repost
        self._fresh_after = fresh_after
        self._move = False  # Discord refused an edit of this message: post a fresh one
        self._pending: Rendered | None = None
        self._worker: asyncio.Task[None] | None = None
        self._next_edit = 0.0  # loop time before which no edit goes out

    def show(self, rendered: Rendered) -> None:
        """Show `rendered` once the edit before it is done, replacing any state still
        waiting."""
        self._pending = rendered
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())

    async def settle(self) -> Message:
        """Wait until the newest state is shown; the message that shows it."""
        while self._worker is not None and not self._worker.done():
            await asyncio.shield(self._worker)
        return self.message

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending is not None:
            await asyncio.sleep(self._next_edit - loop.time())  # newer states replace it
            rendered, self._pending = self._pending, None
            await self._put(rendered)
            self._next_edit = loop.time() + EDIT_INTERVAL

    async def _put(self, rendered: Rendered) -> None:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                if self._move or age(self.message) >= self._fresh_after:
                    self.message = await self._repost(rendered)
                    self._move = False
                else:
                    self.message = await self.message.edit(**rendered.edit_kwargs())
                return
            except discord.HTTPException as error:
                if error.code in (EDIT_TOO_OLD, UNKNOWN_MESSAGE):
                    self._move = True
                    continue
                log.warning("editing progress message %s failed: %s", self.message.id, error)
                if self._pending is not None:
                    return  # a newer state goes out instead
                await asyncio.sleep(min(2.0**attempt, 30.0))
        log.error("progress message %s: gave up on a state", self.message.id)
