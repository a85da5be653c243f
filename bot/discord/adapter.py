"""The Discord adapter: connects discord.py, turns events into invocations, shows notices.

`start()` points discord.py at the configured REST and gateway URLs (class attributes it reads
when each request and connection is made, so before login), logs in, and reads from the
application's flags whether the privileged message content intent is enabled: if not, it logs
in again without asking for it (asking would get the connection closed with 4014), says that
prefix commands are off, and goes on with slash commands, mentions, buttons and reactions. It
syncs the slash commands to the guild when their definitions changed, connects, and returns
once the guild has arrived (its GUILD_CREATE, right after READY), or with an error once
discord.py's READY came without it. discord.py reconnects and resumes on its own; a new
session (READY again), once its guild is in, reconciles the votes made by reaction while none
was connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot.acks import ACKS_FIRST_SECONDS, Unacked
from bot.adapter import AdapterStatus, show_notices
from bot.discord import delivery
from bot.discord.answers import ChannelAnswer, InteractionAnswer, MessageAnswer
from bot.discord.appcommands import Completions, build_commands, sync_if_changed
from bot.discord.client import HolmClient, Stamp, http_trace
from bot.discord.identity import member_user, place_of
from bot.discord.options import (
    NEEDED_IN_CHANNEL,
    Timings,
    content_intent_enabled,
    intents,
    invite_url,
)
from bot.discord.outcomes import Outcomes
from bot.discord.prefix import command_text
from bot.discord.reactions import Reactions
from bot.metrics import Metrics
from bot.settings import DiscordConfig
from commands.core.models import Invocation, Notice, NoticeKind, Outcome, Platform
from commands.flow.layer import CommandLayer

log = logging.getLogger(__name__)
# interactions whose acknowledgement is awaited (autocomplete answers itself at once)
ACKNOWLEDGED = (discord.InteractionType.application_command, discord.InteractionType.component)

COMMANDS_MARKER = "discord-commands.sha256"
PREFIX_OFF = (
    "prefix commands are off: the message content intent is not enabled for this application "
    "(Developer Portal > Bot > Message Content Intent); slash commands, @mentions, buttons and "
    "reactions still work"
)
STOPPING = "holmbot is stopping; try again in a moment"
FAILED = "that command failed; see the bot's log"
EDITS = {NoticeKind.REQUEST_VOTED, NoticeKind.REQUEST_DECIDED, NoticeKind.REQUEST_EXPIRED}


class DiscordAdapter:
    """holmbot on one Discord guild."""

    platform = Platform.DISCORD

    def __init__(
        self,
        config: DiscordConfig,
        layer: CommandLayer,
        metrics: Metrics,
        state_dir: Path,
        timings: Timings | None = None,
    ) -> None:
        if config.token is None or config.guild_id is None:
            raise ValueError(f"Discord needs {' and '.join(config.missing())}")
        self.config = config
        self.guild_id: int = config.guild_id
        self.layer = layer
        self.metrics = metrics
        self.timings = timings or Timings()
        self.marker = state_dir / COMMANDS_MARKER
        self.outcomes = Outcomes(layer, config, self.timings)
        self.reactions = Reactions(layer, config)
        self.completions = Completions(layer, self.timings.completion_timeout)
        self.prefix_commands = True
        self.client: HolmClient | None = None
        self.closing = False
        self._connection: asyncio.Task[None] | None = None
        self._notices: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._sessions = 0
        self._session_id: str | None = None  # the gateway session last started
        self.unacked = Unacked()  # interactions not answered or deferred yet
        self._online = False  # from the guild's arrival or RESUMED to the next disconnect
        self._detail = "not started"

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Log in, sync the commands if changed, connect; return once the guild is there."""
        Route.BASE = self.config.api_url
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.config.gateway_url)
        client = await self._login(message_content=True)
        try:
            if not content_intent_enabled(client.application_flags):
                await client.close()
                self.prefix_commands = False
                log.warning(PREFIX_OFF)
                client = await self._login(message_content=False)
            await sync_if_changed(client.tree, discord.Object(self.guild_id), self.marker)
            self.client = self.outcomes.client = client
            self._connection = asyncio.create_task(self._connect(client))
            await self._until_ready(client)
        except BaseException:
            await self.close()
            raise
        self._detail = "" if self.prefix_commands else PREFIX_OFF
        self._notices = asyncio.create_task(show_notices(self.layer, Platform.DISCORD, self.show))

    async def _login(self, *, message_content: bool) -> HolmClient:
        client = HolmClient(
            self,
            intents=intents(message_content=message_content),
            trace=http_trace(self.metrics, yarl.URL(Route.BASE).path),
            guild_ready_timeout=self.timings.guild_ready_timeout,
        )
        guild = discord.Object(self.guild_id)
        for command in build_commands(self.run_interaction, self.completions):
            client.tree.add_command(command, guild=guild)
        client.tree.on_error = self._tree_error  # type: ignore[method-assign]
        try:
            await client.login(self.config.token.get_secret_value())  # type: ignore[union-attr]
        except BaseException:
            await client.close()
            raise
        return client

    async def _connect(self, client: HolmClient) -> None:
        """The gateway connection (discord.py reconnects and resumes); why it ended, if it
        does, is the status' detail."""
        try:
            await client.connect(reconnect=True)
        except discord.PrivilegedIntentsRequired:
            self._detail = "the gateway refused the message content intent (close code 4014)"
            raise
        except Exception as error:
            self._detail = f"the Discord gateway connection ended: {error!r}"
            raise
        finally:
            self._ready.set()  # a start still waiting learns it ended

    async def _until_ready(self, client: HolmClient) -> None:
        try:
            async with asyncio.timeout(self.timings.start_timeout):
                await self._ready.wait()
        except TimeoutError:
            raise TimeoutError(
                f"no READY and guild {self.guild_id} from the Discord gateway within "
                f"{self.timings.start_timeout:g} s"
            ) from None
        if self._connection is not None and self._connection.done():
            self._connection.result()  # raises why it ended
            raise ConnectionError("the Discord gateway closed before READY")
        if client.get_guild(self.guild_id) is None:
            raise RuntimeError(
                f"the bot is not a member of guild {self.guild_id}: "
                f"invite it with {invite_url(client.application_id or 0)}"
            )

    async def close(self) -> None:
        """Stop taking commands, let edits already due go out (briefly), disconnect."""
        self.closing = True
        if self._notices is not None:
            self._notices.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._notices
        await self.outcomes.close()
        if self.client is not None:
            await self.client.close()
        if self._connection is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._connection

    def status(self) -> AdapterStatus:
        client = self.client
        ws = client.ws if client is not None else None
        connected = bool(
            self._online and client is not None and not client.is_closed() and ws and ws.open
        )
        detail = self._detail
        if not connected and not detail:
            detail = "the Discord gateway connection is down; discord.py is reconnecting"
        return AdapterStatus(
            connected=connected,
            handlers_registered=client is not None,
            last_event_at=client.last_event_at if client is not None else None,
            detail=detail,
        )

    # --- events (called by HolmClient) ----------------------------------------------------

    def on_event(self) -> None:
        self.metrics.event_seen(Platform.DISCORD)

    async def on_guild_available(self, guild: discord.Guild) -> None:
        """The guild's GUILD_CREATE, right after READY: the session starts here, without
        waiting for discord.py's READY (`guild_ready_timeout` after the last GUILD_CREATE)."""
        if guild.id == self.guild_id:
            await self._session_started()

    async def on_ready(self) -> None:
        """discord.py's READY, `guild_ready_timeout` after the last GUILD_CREATE. Without the
        guild (the bot is not a member) the session starts here, and a start then fails; a
        guild still unavailable starts it when its GUILD_CREATE comes."""
        client = self.client
        guild = client.get_guild(self.guild_id) if client is not None else None
        if guild is None or not guild.unavailable:
            await self._session_started()

    async def _session_started(self) -> None:
        """A gateway session is up (once a session, at its guild or its READY, whichever
        comes first): count the votes by reaction made while none saw them."""
        client = self.client
        session = client.ws.session_id if client is not None and client.ws is not None else None
        if session is not None and session == self._session_id:
            return  # started already (and perhaps disconnected since)
        self._session_id = session
        self._online = True
        self._ready.set()
        self._sessions += 1
        if self._sessions > 1:
            self.metrics.reconnect(Platform.DISCORD)
        if client is not None:
            await self.reactions.reconcile(client)

    async def on_resumed(self) -> None:
        """The session resumed: Discord replays what it missed, nothing to reconcile."""
        self._online = True
        self.metrics.reconnect(Platform.DISCORD)

    def on_disconnect(self) -> None:
        self._online = False

    async def on_message(self, message: discord.Message) -> None:
        client = self.client
        if client is None or client.user is None or message.author.bot or self.closing:
            return
        if message.guild is None or message.guild.id != self.guild_id:
            return
        prefix = self.config.prefix if self.prefix_commands else ""
        text = command_text(message.content, prefix, client.user.id)
        if text is None:
            return
        user = member_user(message.author, self._interest())
        channel, thread = place_of(message.channel, message.channel.id)
        invocation = Invocation(
            user=user,
            channel=channel,
            thread=thread,
            text=text,
            delivery_id=delivery.of_message(message.id),
        )
        outcome = await self.layer.handle(invocation)
        await self._deliver(MessageAnswer(message), outcome, user.key)

    async def on_reaction(
        self, payload: discord.RawReactionActionEvent, stamp: Stamp | None
    ) -> None:
        if self.client is not None and payload.guild_id == self.guild_id and not self.closing:
            await self.reactions.on_reaction(self.client, payload, stamp)

    async def on_button(self, interaction: discord.Interaction[Any], command: str) -> None:
        await self.run_interaction(interaction, command)

    async def run_interaction(self, interaction: discord.Interaction[Any], text: str) -> None:
        """A slash command or a button click: `text` run as the user, answered once."""
        user = member_user(interaction.user, self._interest())
        channel_id = interaction.channel_id or 0
        channel, thread = place_of(interaction.channel, channel_id)
        invocation = Invocation(
            user=user,
            channel=channel,
            thread=thread,
            text=text,
            delivery_id=delivery.of_interaction(interaction.id),
        )
        answer = InteractionAnswer(interaction, self.timings.defer_after)
        try:
            claimed = await self.layer.claim(invocation)  # a repeated one is not deferred again
            if isinstance(claimed, Outcome):
                outcome = claimed
            else:
                if self.layer.will_run(claimed):  # acknowledged before it starts
                    await answer.defer()
                    self.unacked.answered(interaction.id)
                    await self.unacked.none_left(ACKS_FIRST_SECONDS)  # other bursts' first
                outcome = await answer.run(self._handle(interaction, claimed))
            if await self._is_vote_click(interaction, outcome):
                # the request message shows the vote; the answer is for the voter only
                reply = outcome.reply.model_copy(update={"private": True})
                outcome = replace(outcome, reply=reply)
            await self._deliver(answer, outcome, user.key)
        finally:
            self.unacked.answered(interaction.id)

    def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        """A slash command or a click arrived: its acknowledgement is due."""
        if interaction.type in ACKNOWLEDGED:
            self.unacked.taken(interaction.id)

    async def _handle(
        self, interaction: discord.Interaction[Any], invocation: Invocation
    ) -> Outcome:
        if self.closing:
            return await self.layer.refuse(invocation, STOPPING)
        missing = [p for p in NEEDED_IN_CHANNEL if not getattr(interaction.app_permissions, p)]
        if missing:
            names = ", ".join(name.replace("_", " ") for name in missing)
            reason = f"holmbot cannot answer in this channel: it needs {names} here"
            return await self.layer.refuse(invocation, reason)
        return await self.layer.handle(invocation)

    async def _is_vote_click(self, interaction: discord.Interaction[Any], outcome: Outcome) -> bool:
        message = interaction.message
        if message is None or outcome.progress is not None:
            return False
        ref = self.outcomes.ref(message)
        bound = await self.layer.state.find_message(ref.platform, ref.channel, ref.message_id)
        return bound is not None and bound.subject_kind == "request"

    async def _deliver(self, answer: Any, outcome: Outcome, requester: str | None) -> None:
        try:
            await self.outcomes.deliver(answer, outcome, requester)
        except discord.HTTPException as error:
            log.warning("answering on Discord failed: %s", error)

    async def _tree_error(self, interaction: discord.Interaction[Any], error: Exception) -> None:
        log.error("slash command failed", exc_info=error)
        if not interaction.response.is_done():
            with contextlib.suppress(discord.HTTPException):
                await interaction.response.send_message(FAILED, ephemeral=True)

    def _interest(self) -> frozenset[str]:
        return self.layer.policy.groups_of_interest(Platform.DISCORD)

    # --- notices ----------------------------------------------------------------------------

    async def show(self, notice: Notice) -> None:
        """Post or edit what one notice says."""
        outcome = notice.outcome
        refs = [ref for ref in notice.refs if ref.platform is Platform.DISCORD]
        if notice.kind in EDITS:
            for ref in refs:
                await self.outcomes.edit(ref, outcome.reply)
            return
        resumed = notice.kind is NoticeKind.OPERATION_RESUMED
        if resumed and refs and outcome.progress is not None and notice.operation_id:
            message = self.outcomes.message(refs[-1])  # the newest, if it was posted afresh
            self.outcomes.spawn(
                self.outcomes.follow(
                    message, outcome.reply, outcome.progress, notice.operation_id, notice.requester
                )
            )
        elif resumed and refs:
            await self.outcomes.edit(refs[-1], outcome.reply)
        else:  # APPROVED_RUNNING, ROLLBACK_PROPOSED, or nothing to edit: a new message
            place = int(notice.thread or notice.channel)
            channel = self.outcomes.connected().get_partial_messageable(place)
            # an approved request's outcome answers its request message
            request = self.outcomes.message(refs[0]) if refs and not resumed else None
            await self._deliver(ChannelAnswer(channel, request), outcome, notice.requester)
