"""bolt listeners: slash commands, mentions, button clicks and reactions as invocations.

Every slash command is acknowledged within Slack's 3 seconds: its invocation runs while the
ack waits up to `ack_seconds`; a private answer ready by then (bad input, a refusal) is the ack
itself, as an ephemeral reply; anything else is acked with a short in-channel echo and shown
after the ack. Events (mentions, reactions) are acked by bolt before their listener runs; a
click is acked at once. A command in a channel holmbot is not a member of is refused with how
to invite it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.metrics import Metrics
from bot.slack import delivery
from bot.slack.blocks import ACTION_PREFIX, mrkdwn, render
from bot.slack.identity import NOT_A_MEMBER, Channels, Groups
from bot.slack.options import SlackOptions
from bot.slack.outcomes import Outcomes, Place
from bot.slack.slash import BY_NAME, EVENTS, SLASH_COMMANDS, SlashCommand, mention_text
from commands.core.models import Invocation, MessageRef, Outcome, Platform, Reply, Tone
from commands.flow.layer import CommandLayer

log = logging.getLogger(__name__)

Ack = Callable[..., Awaitable[Any]]
FAILED = "that command failed; see holmbot's log"


class Handlers:
    """What the bolt app does with each request it takes."""

    def __init__(
        self,
        layer: CommandLayer,
        outcomes: Outcomes,
        groups: Groups,
        channels: Channels,
        options: SlackOptions,
        metrics: Metrics,
    ) -> None:
        self.layer = layer
        self.outcomes = outcomes
        self.groups = groups
        self.channels = channels
        self.options = options
        self.metrics = metrics
        self.last_event_at: float | None = None
        self.closing = False
        self.running: set[asyncio.Task[Any]] = set()  # listeners still at work

    @contextlib.contextmanager
    def _working(self) -> Iterator[None]:
        """Count the listener running in this task until it returns."""
        task = asyncio.current_task()
        if task is not None:
            self.running.add(task)
        try:
            yield
        finally:
            self.running.discard(task)  # type: ignore[arg-type]

    async def idle(self) -> None:
        """Wait until every listener has returned."""
        while self.running:
            await asyncio.wait(list(self.running))

    def register(self, app: AsyncApp) -> None:
        """Listen to every slash command and event of the manifest, and to the buttons."""
        app.use(self.on_request)
        for command in SLASH_COMMANDS:
            app.command(command.name)(self.on_command)
        listeners = {
            "app_mention": self.on_mention,
            "reaction_added": self.on_reaction,
            "reaction_removed": self.on_reaction,
        }
        for event in EVENTS:
            app.event(event)(listeners[event])
        app.action(re.compile(f"^{re.escape(ACTION_PREFIX)}"))(self.on_action)

    async def on_request(self, next_: Callable[[], Awaitable[None]]) -> None:
        """bolt middleware: every verified request counts as an event seen."""
        self.last_event_at = time.time()
        self.metrics.event_seen(Platform.SLACK)
        await next_()

    # --- slash commands -----------------------------------------------------------------------

    async def on_command(self, ack: Ack, command: dict[str, Any]) -> None:
        with self._working():
            slash = BY_NAME[command["command"]]
            place = Place(command["channel_id"], None, command["user_id"])
            work = asyncio.create_task(self._run_command(slash, command, place))
            done, _ = await asyncio.wait({work}, timeout=self.options.ack_seconds)
            if work in done:
                outcome = work.result()
                if outcome.duplicate:
                    await ack()
                    return
                if outcome.reply.private:
                    await ack(
                        response_type="ephemeral", **render(outcome.reply, files=False).message()
                    )
                    return
            typed = f"{slash.name} {command.get('text', '')}".strip()
            await ack(
                response_type="in_channel", text=f":hourglass_flowing_sand: `{mrkdwn(typed)}`"
            )
            outcome = await work
            await self.outcomes.deliver(outcome, place, requester=f"slack:{place.user}")

    async def _run_command(
        self, slash: SlashCommand, command: dict[str, Any], place: Place
    ) -> Outcome:
        try:
            user = await self.groups.user(command["user_id"], command.get("user_name"))
            invocation = Invocation(
                user=user,
                channel=place.channel,
                text=slash.text(command.get("text", "")),
                delivery_id=delivery.of_trigger(command),
            )
            if self.closing:
                return await self.layer.refuse(invocation, "holmbot is stopping; try again soon")
            if not await self.channels.is_member(place.channel):
                return await self.layer.refuse(invocation, NOT_A_MEMBER)
            return await self.layer.handle(invocation)
        except Exception:
            log.exception("slash command %s failed", slash.name)
            return Outcome(Reply(title=FAILED, tone=Tone.ERROR, private=True), failed=True)

    # --- events and clicks --------------------------------------------------------------------

    async def on_mention(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        """`@holmbot deploy nova v2`: the text after the mention, answered where it was said."""
        with self._working():
            if self.closing:
                return
            place = Place(event["channel"], event.get("thread_ts"), event.get("user"))
            if place.user is None:
                return
            user = await self.groups.user(place.user)
            invocation = Invocation(
                user=user,
                channel=place.channel,
                thread=place.thread,
                text=mention_text(event.get("text", "")),
                delivery_id=delivery.of_event(body),
            )
            outcome = await self.layer.handle(invocation)
            await self.outcomes.deliver(outcome, place, requester=user.key)

    async def on_action(self, ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        """A button: its value is the command it runs, as the user who clicked."""
        with self._working():
            await ack()
            if self.closing:
                return
            channel = (body.get("channel") or {}).get("id") or body["container"]["channel_id"]
            message = body.get("message") or {}
            place = Place(channel, message.get("thread_ts"), body["user"]["id"])
            user = await self.groups.user(body["user"]["id"], body["user"].get("username"))
            invocation = Invocation(
                user=user,
                channel=channel,
                thread=place.thread,
                text=action.get("value", ""),
                delivery_id=delivery.of_trigger(body),
            )
            outcome = await self.layer.handle(invocation)
            if outcome.progress is None and await self._is_request(channel, message.get("ts")):
                # a vote: the request message shows it; the answer is for the voter only
                outcome = replace(outcome, reply=outcome.reply.model_copy(update={"private": True}))
            await self.outcomes.deliver(outcome, place, requester=user.key)

    async def _is_request(self, channel: str, ts: str | None) -> bool:
        if ts is None:
            return False
        bound = await self.layer.state.find_message(Platform.SLACK, channel, ts)
        return bound is not None and bound.subject_kind == "request"

    async def on_reaction(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        """An approve or deny reaction on a request message is a vote; taking it off withdraws
        it. A reaction that does not count is explained privately."""
        with self._working():
            name, item = event.get("reaction"), event.get("item") or {}
            votes = {self.options.approve_reaction: True, self.options.deny_reaction: False}
            if self.closing or name not in votes or item.get("type") != "message":
                return
            user = await self.groups.user(event["user"])
            removed = event.get("type") == "reaction_removed"
            ref = MessageRef(
                platform=Platform.SLACK, channel=item["channel"], message_id=item["ts"]
            )
            outcome = await self.layer.react(
                user, ref, approve=votes[name], removed=removed, delivery_id=delivery.of_event(body)
            )
            if outcome is None or outcome.duplicate or removed or not outcome.refused:
                return
            said = outcome.reply
            reply = said.model_copy(
                update={"title": f"your :{name}: does not count: {said.title}", "private": True}
            )
            await self.outcomes.tell(Place(item["channel"], None, event["user"]), reply)
