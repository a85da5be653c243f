"""bolt listeners: slash commands, mentions, button clicks and reactions as invocations.

Every listener only decides what its ack says and hands the work to a background task, so the
ack goes out first: bolt runs with `process_before_response=True` and sends the ack (a Socket
Mode frame, or the HTTP response) as soon as the listener returns. The work then waits until no
request taken is waiting for its ack (`bot.acks`, at most `ACKS_FIRST_SECONDS`), so that
a burst of commands is acked before any of them runs and holds the event loop.

A slash command's ack waits only for what decides it: who asks (their cached user groups),
whether holmbot is in the channel (cached), the delivery id claimed (a redelivery gets a bare
ack and runs nothing) and whether the command parses and the policy lets it run here. A command
that will run is acked with a short in-channel echo and runs after the ack; bad input or a
refusal is the ack itself, as an ephemeral reply. Votes and cancellations, answered from
holmbot's own state and often privately (a vote that does not count), are waited for and their
private answer is the ack. Whatever is not decided within `ack_seconds` is acked with the echo
and shown after. Events (mentions, reactions) and clicks are acked at once. A command in a
channel holmbot is not a member of is refused with how to invite it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import replace
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.acks import ACKS_FIRST_SECONDS, Unacked
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
# actions whose answer is waited for before the ack: quick (holmbot's own state) and often
# private (a vote that does not count, a request one may not cancel)


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
        self.running: set[asyncio.Task[Any]] = set()  # listeners and their work, still going
        self.unacked = Unacked()  # what handed-off work lets go first

    @contextlib.contextmanager
    def _listening(self) -> Iterator[None]:
        """A listener until it returns: counted as running, and as an ack not yet sent."""
        task, token = asyncio.current_task(), object()
        if task is not None:
            self.running.add(task)
        self.unacked.taken(token)
        try:
            yield
        finally:
            self.unacked.answered(token)
            self.running.discard(task)  # type: ignore[arg-type]

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run a listener's work in the background, once the acks being decided are out."""
        task = asyncio.create_task(self._after_acks(work))
        self.running.add(task)
        task.add_done_callback(self._finished)

    async def _after_acks(self, work: Coroutine[Any, Any, None]) -> None:
        try:  # by now the listener that spawned this has returned and its ack has gone
            await self.unacked.none_left(ACKS_FIRST_SECONDS)
        except BaseException:
            work.close()
            raise
        await work

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.running.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("handling a Slack request failed", exc_info=error)

    async def idle(self) -> None:
        """Wait until every listener has returned and its work is done."""
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
        """Ack with what is known at once (the answer, or the echo), then run the command."""
        with self._listening():
            slash = BY_NAME[command["command"]]
            place = Place(command["channel_id"], None, command["user_id"])
            gate = asyncio.create_task(self._gate(slash, command, place))
            done, _ = await asyncio.wait({gate}, timeout=self.options.ack_seconds)
            answer = gate.result() if gate in done else None
            if isinstance(answer, Outcome) and answer.duplicate:
                await ack()
                return
            if isinstance(answer, Outcome) and answer.reply.private:
                await ack(response_type="ephemeral", **render(answer.reply, files=False).message())
                return
            typed = f"{slash.name} {command.get('text', '')}".strip()
            await ack(
                response_type="in_channel", text=f":hourglass_flowing_sand: `{mrkdwn(typed)}`"
            )
            self._spawn(self._answer(slash, gate, place))

    async def _gate(
        self, slash: SlashCommand, command: dict[str, Any], place: Place
    ) -> Invocation | Outcome:
        """What decides the ack: the outcome when it is known at once (a refusal, bad input, a
        duplicate, a vote's answer), else the invocation to run after the ack."""
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
            # claimed before the ack: a redelivery gets a bare ack, not the echo again
            claimed = await self.layer.claim(invocation)
            if isinstance(claimed, Outcome):
                return claimed
            invocation = claimed
            if not self.layer.will_run(invocation):
                return await self.layer.handle(invocation)  # says why, privately, at once
            return invocation
        except Exception:
            log.exception("slash command %s failed", slash.name)
            return Outcome(Reply(title=FAILED, tone=Tone.ERROR, private=True), failed=True)

    async def _answer(
        self, slash: SlashCommand, gate: asyncio.Task[Invocation | Outcome], place: Place
    ) -> None:
        """After the echo: run the command (or take the answer decided late) and show it."""
        decided = await gate
        if isinstance(decided, Outcome):
            outcome = decided
        else:
            try:
                outcome = await self.layer.handle(decided)
            except Exception:
                log.exception("slash command %s failed", slash.name)
                outcome = Outcome(Reply(title=FAILED, tone=Tone.ERROR, private=True), failed=True)
        await self.outcomes.deliver(outcome, place, requester=f"slack:{place.user}")

    # --- events and clicks --------------------------------------------------------------------

    async def on_mention(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        """`@holmbot deploy nova v2`: the text after the mention, answered where it was said."""
        with self._listening():
            if not self.closing:
                self._spawn(self._mention(event, body))

    async def _mention(self, event: dict[str, Any], body: dict[str, Any]) -> None:
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
        with self._listening():
            await ack()
            if not self.closing:
                self._spawn(self._click(body, action))

    async def _click(self, body: dict[str, Any], action: dict[str, Any]) -> None:
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
        with self._listening():
            name, item = event.get("reaction"), event.get("item") or {}
            votes = {self.options.approve_reaction: True, self.options.deny_reaction: False}
            if not self.closing and name in votes and item.get("type") == "message":
                self._spawn(self._reaction(event, body, votes[name]))

    async def _reaction(self, event: dict[str, Any], body: dict[str, Any], approve: bool) -> None:
        name, item = event["reaction"], event["item"]
        user = await self.groups.user(event["user"])
        removed = event.get("type") == "reaction_removed"
        ref = MessageRef(platform=Platform.SLACK, channel=item["channel"], message_id=item["ts"])
        outcome = await self.layer.react(
            user, ref, approve=approve, removed=removed, delivery_id=delivery.of_event(body)
        )
        if outcome is None or outcome.duplicate or removed or not outcome.refused:
            return
        said = outcome.reply
        reply = said.model_copy(
            update={"title": f"your :{name}: does not count: {said.title}", "private": True}
        )
        await self.outcomes.tell(Place(item["channel"], None, event["user"]), reply)
