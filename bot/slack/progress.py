"""Progress messages: what they show, and edits of at most one per second per message.

An operation's message is its command's reply (what runs) followed by the progress: service,
phase, a bar of the replicas both updated and available, the pods with problems and the time
since the operation started; at the end how it ended. `LiveMessage` edits one message with the
newest state it was given: one `chat.update` at a time, no sooner than `interval` after the
last, so states that arrive meanwhile are coalesced into the newest. A 429 is waited out for its
`Retry-After` (slack-sdk is given no rate-limit retry handler, see `api.py`) and then the newest
state is sent, so the final state is never lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from slack_sdk.errors import SlackApiError

from bot.render.progress import operation_bar
from bot.slack.api import RateLimited, SlackApi, error_code
from bot.slack.blocks import Block, Rendered, context, escape, render
from commands.core.formatting import human_seconds
from commands.core.models import FinalResult, Phase, Progress, Reply, Tone

log = logging.getLogger(__name__)

ATTEMPTS = 5  # tries of one state on errors other than 429 (a newer state starts afresh)
MAX_PROBLEMS = 10
GONE = frozenset({"message_not_found", "channel_not_found", "cant_update_message"})


def progress_blocks(item: Progress | None, elapsed: float) -> list[Block]:
    """The progress part of an operation's message (None: not started yet)."""
    if item is None:
        return [context("starting…")]
    if isinstance(item, FinalResult):
        ended = "done" if item.ok else "failed"
        why = f" ({escape(item.reason)})" if item.reason else ""
        took = human_seconds(item.duration_seconds)
        text = f"`{operation_bar(item)}`  *{ended}* after {took}{why}\n{escape(item.message)}"
        return [_section(text), context(f"operation {escape(item.operation_id)}")]
    facts = [("Service", item.service or "-"), ("Phase", str(item.phase))]
    facts.append(("Elapsed", human_seconds(elapsed)))
    if item.desired is not None:
        replicas = f"{item.updated or 0} updated, {item.available or 0} available"
        facts.append(("Replicas", f"{replicas} of {item.desired}"))
    blocks: list[Block] = [
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{escape(v)}"} for k, v in facts],
        },
        _section(f"`{operation_bar(item)}`  {escape(item.message)}"),
    ]
    if item.problems:
        shown = [f":warning: {escape(p)}" for p in item.problems[:MAX_PROBLEMS]]
        if len(item.problems) > MAX_PROBLEMS:
            shown.append(f"and {len(item.problems) - MAX_PROBLEMS} more")
        blocks.append(_section("\n".join(shown)))
    blocks.append(context(f"operation {escape(item.operation_id)} · step {item.seq}"))
    return blocks


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def progress_message(header: Reply, item: Progress | None, elapsed: float) -> Rendered:
    """An operation's whole message: what runs (`header`) and where it is."""
    if isinstance(item, FinalResult):
        tone = Tone.SUCCESS if item.ok else Tone.ERROR
    elif item is not None and (item.problems or item.phase is Phase.ROLLING_BACK):
        tone = Tone.WARNING
    else:
        tone = header.tone
    shown = header.model_copy(update={"tone": tone, "actions": [], "attachment": None})
    return render(shown, files=False, extra=progress_blocks(item, elapsed))


class LiveMessage:
    """One posted message, edited to show the newest state given to `show`."""

    def __init__(
        self,
        api: SlackApi,
        channel: str,
        ts: str,
        interval: float,
        *,
        touched_at: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.channel = channel
        self.ts = ts
        self.interval = interval
        self.clock = clock
        self.last_at = touched_at if touched_at is not None else clock() - interval
        self.edits = 0  # edits Slack took
        self.coalesced = 0  # states replaced by a newer one before they were sent
        self._pending: Rendered | None = None
        self._worker: asyncio.Task[None] | None = None

    @property
    def idle(self) -> bool:
        return self._pending is None and (self._worker is None or self._worker.done())

    def show(self, rendered: Rendered) -> None:
        """Show `rendered` as soon as allowed, replacing a state still waiting."""
        if self._pending is not None:
            self.coalesced += 1
        self._pending = rendered
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())

    def cancel(self) -> None:
        """Stop editing (the adapter is closing)."""
        self._pending = None
        if self._worker is not None:
            self._worker.cancel()

    async def settle(self) -> None:
        """Wait until the newest state is shown (or given up on)."""
        while self._worker is not None and not self._worker.done():
            await asyncio.wait({self._worker})

    async def _drain(self) -> None:
        failures = 0
        while self._pending is not None:
            wait = self.last_at + self.interval - self.clock()
            if wait > 0:
                await asyncio.sleep(wait)  # states arriving meanwhile replace the pending one
            rendered, self._pending = self._pending, None
            try:
                await self.api.once(
                    "chat_update", channel=self.channel, ts=self.ts, **rendered.message()
                )
                self.last_at = self.clock()  # the next one a whole interval after this one ended
            except RateLimited as limited:
                self._pending = self._pending or rendered
                await asyncio.sleep(limited.retry_after)
                continue
            except SlackApiError as error:
                code = error_code(error)
                if code in GONE:
                    log.warning("message %s can no longer be edited: %s", self.ts, code)
                    self._pending = None
                    return
                failures += 1
                if self._pending is None and failures < ATTEMPTS:
                    self._pending = rendered
                log.warning("editing message %s failed: %s", self.ts, error_code(error) or error)
                await asyncio.sleep(min(2.0**failures, 30.0))
                continue
            except Exception:  # no answer: the connection; try again like an error
                failures += 1
                if self._pending is None and failures < ATTEMPTS:
                    self._pending = rendered
                log.warning("editing message %s got no answer", self.ts, exc_info=True)
                await asyncio.sleep(min(2.0**failures, 30.0))
                continue
            failures = 0
            self.edits += 1


class Editors:
    """The live message of each message the bot edits, so edits of one message from several
    places (progress, votes, expiry) share its one-per-interval budget."""

    def __init__(self, api: SlackApi, interval: float) -> None:
        self.api = api
        self.interval = interval
        self._live: dict[tuple[str, str], LiveMessage] = {}

    def of(self, channel: str, ts: str, *, touched_at: float | None = None) -> LiveMessage:
        """The message's live message; `touched_at`: when it was just posted."""
        self._forget_idle()
        key = (channel, ts)
        live = self._live.get(key)
        if live is None:
            live = self._live[key] = LiveMessage(
                self.api, channel, ts, self.interval, touched_at=touched_at
            )
        return live

    def edit(self, channel: str, ts: str, rendered: Rendered) -> LiveMessage:
        live = self.of(channel, ts)
        live.show(rendered)
        return live

    async def settle(self) -> None:
        """Wait until every message shows its newest state."""
        for live in list(self._live.values()):
            await live.settle()

    def close(self) -> None:
        for live in self._live.values():
            live.cancel()

    def _forget_idle(self) -> None:
        """Drop messages idle for a while (their interval has long passed)."""
        now = time.monotonic()
        for key, live in list(self._live.items()):
            if live.idle and now - live.last_at > 10 * self.interval:
                del self._live[key]
