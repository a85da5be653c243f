"""Progress messages: one per operation, edited in place with a progress bar.

`LiveMessage` sends one edit at a time and keeps only the newest state while an edit is in
flight, so the rate limits discord.py reads from Discord's headers decide how often the message
changes, and the last state (the final result) is never dropped. A message about to be an hour
old, or one Discord no longer lets be edited (30046) or that was deleted (10008), is replaced by
a fresh message, which `repost` posts and binds.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Awaitable, Callable

import discord

from bot.discord.embeds import Rendered
from bot.render.progress import progress_bar
from commands.core.models import FinalResult, Phase, Progress, Reply, Tone

log = logging.getLogger(__name__)

FRESH_AFTER = datetime.timedelta(minutes=55)  # Discord caps edits of messages over an hour old
EDIT_TOO_OLD = 30046
UNKNOWN_MESSAGE = 10008
ATTEMPTS = 5  # for one state; a newer state replaces a failing one at once

Message = discord.Message | discord.PartialMessage


def progress_reply(item: Progress, title: str) -> Reply:
    """What an operation's progress message shows for `item` (`title`: what runs)."""
    if isinstance(item, FinalResult):
        mark = "done" if item.ok else "failed"
        lines = [item.message, f"{mark} after {item.duration_seconds:.0f}s"]
        if item.reason:
            lines.append(f"reason: {item.reason}")
        tone = Tone.SUCCESS if item.ok else Tone.ERROR
        return Reply(title=title, tone=tone, lines=[bar(item), *lines])
    lines = [bar(item), f"{item.phase}: {item.message}", *(f"⚠ {p}" for p in item.problems)]
    tone = Tone.WARNING if item.phase is Phase.ROLLING_BACK or item.problems else Tone.INFO
    return Reply(title=title, tone=tone, lines=lines)


def bar(item: Progress) -> str:
    """Updated-and-available replicas of desired (a rollout), else the phase as steps."""
    if isinstance(item, FinalResult):
        return progress_bar(1, 1) if item.ok else progress_bar(0, 1)
    if item.desired:
        done = min(item.updated or 0, item.available or 0)
        if item.phase is Phase.VERIFYING:
            done = item.desired
        return progress_bar(done, item.desired)
    steps = [Phase.WAITING, Phase.PROGRESSING, Phase.VERIFYING, Phase.DONE]
    done = steps.index(item.phase) if item.phase in steps else 1
    return progress_bar(done, len(steps) - 1)


def age(message: Message) -> datetime.timedelta:
    return discord.utils.utcnow() - discord.utils.snowflake_time(message.id)


class LiveMessage:
    """A message that shows the newest of the states given to `show`."""

    def __init__(
        self,
        message: Message,
        repost: Callable[[Rendered], Awaitable[discord.Message]],
        *,
        fresh_after: datetime.timedelta = FRESH_AFTER,
    ) -> None:
        self.message = message
        self._repost = repost
        self._fresh_after = fresh_after
        self._pending: Rendered | None = None
        self._worker: asyncio.Task[None] | None = None
        self.edits = 0  # edits that reached Discord
        self.skipped = 0  # states replaced by a newer one before they were sent

    def show(self, rendered: Rendered) -> None:
        """Show `rendered` as soon as the edit before it is done (replacing any state that
        is still waiting)."""
        if self._pending is not None:
            self.skipped += 1
        self._pending = rendered
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())

    async def settle(self) -> Message:
        """Wait until the newest state is shown; the message that shows it."""
        while self._worker is not None and not self._worker.done():
            await asyncio.shield(self._worker)
        return self.message

    async def _drain(self) -> None:
        while self._pending is not None:
            rendered, self._pending = self._pending, None
            await self._put(rendered)

    async def _put(self, rendered: Rendered) -> None:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                if age(self.message) >= self._fresh_after:
                    self.message = await self._repost(rendered)
                else:
                    self.message = await self.message.edit(**rendered.edit_kwargs())
                    self.edits += 1
                return
            except discord.HTTPException as error:
                if error.code in (EDIT_TOO_OLD, UNKNOWN_MESSAGE):
                    self._fresh_after = datetime.timedelta(0)  # post afresh from now on
                    continue
                if self._pending is not None:
                    return  # a newer state goes out instead
                log.warning("editing progress message %s failed: %s", self.message.id, error)
                await asyncio.sleep(min(2.0**attempt, 30.0))
        log.error("progress message %s: gave up on a state", self.message.id)
