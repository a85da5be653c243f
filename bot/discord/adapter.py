"""The Discord adapter: connects discord.py, turns events into invocations, shows notices.

`start()` points discord.py at the configured REST and gateway URLs, logs in, syncs the slash
commands if their definitions changed, connects, and returns once READY arrived and the guild is
there. If the gateway refuses the message content intent (close code 4014: the intent is not
enabled for the application), it connects again without it: prefix commands are then off, which
it logs and reports in its status, and slash commands, buttons and reactions still work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot.adapter import AdapterStatus
from bot.discord import delivery
from bot.discord.answers import ChannelAnswer, InteractionAnswer, MessageAnswer
from bot.discord.appcommands import Completions, build_commands, sync_if_changed
from bot.discord.client import HolmClient, Metrics, Stamp, http_trace
from bot.discord.identity import member_user, mention, mention_key, place_of
from bot.discord.options import DiscordOptions, invite_url
from bot.discord.outcomes import Outcomes
from bot.discord.prefix import command_text
from bot.discord.reactions import Reactions
from commands.core.models import Invocation, Notice, NoticeKind, Platform
from commands.flow.layer import CommandLayer

log = logging.getLogger(__name__)

START_TIMEOUT = 60.0  # READY (and the guild) must arrive within this
COMMANDS_MARKER = "discord-commands.sha256"
PREFIX_OFF = (
    "prefix commands are off: the message content intent is {why} (slash commands, "
    "buttons and reactions still work; docs/discord.md says how to enable it)"
)
EDITS = {NoticeKind.REQUEST_VOTED, NoticeKind.REQUEST_DECIDED, NoticeKind.REQUEST_EXPIRED}


class DiscordAdapter:
    """holmbot on one Discord guild."""

    platform = Platform.DISCORD

    def __init__(
        self, options: DiscordOptions, layer: CommandLayer, metrics: Metrics, state_dir: Path
    ) -> None:
        self.options = options
        self.layer = layer
        self.metrics = metrics
        self.marker = state_dir / COMMANDS_MARKER
        self.outcomes = Outcomes(layer, options)
        self.reactions = Reactions(layer, options)
        self.completions = Completions(layer)
        self.prefix_commands = options.message_content
        self.client: HolmClient | None = None
        self._detail = "" if options.message_content else PREFIX_OFF.format(why="not requested")
        self._ready = asyncio.Event()
        self._readies = 0
        self._closing = False
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and register everything; returns once the guild is ready, or raises."""
        Route.BASE = self.options.api_url
        DiscordWebSocket.DEFAULT_GATEWAY = self.options.gateway()
        client = await self._connect()
        self._spawn(self._supervise(client))
        self._spawn(self._show_notices())

    async def _connect(self) -> HolmClient:
        """Log in, sync, connect until ready; without the content intent if refused."""
        while True:
            client = self._build()
            try:
                await self._open(client)
            except discord.PrivilegedIntentsRequired:
                await client.close()
                if not self.prefix_commands:
                    raise
                self._prefix_off("not enabled for this application (gateway close 4014)")
                continue
            except BaseException:
                await client.close()
                raise
            return client

    def _build(self) -> HolmClient:
        client = HolmClient(
            self,
            intents=self.options.intents(message_content=self.prefix_commands),
            trace=http_trace(self.metrics, yarl.URL(Route.BASE).path),
            guild_ready_timeout=self.options.guild_ready_timeout,
        )
        guild = discord.Object(self.options.guild_id)
        for command in build_commands(self.run_interaction, self.completions):
            client.tree.add_command(command, guild=guild)
        client.tree.on_error = self._tree_error  # type: ignore[method-assign]
        return client

    async def _open(self, client: HolmClient) -> None:
        await client.login(self.options.token.get_secret_value())
        await sync_if_changed(client.tree, discord.Object(self.options.guild_id), self.marker)
        self._ready.clear()
        self.client = client
        self.outcomes.client = client
        connection = client.gateway_task = asyncio.create_task(client.connect(reconnect=True))
        ready = asyncio.create_task(self._ready.wait())
        done, _ = await asyncio.wait(
            {connection, ready}, timeout=START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        ready.cancel()
        if connection in done:
            connection.result()  # raises why it ended
            raise ConnectionError("the Discord gateway closed before READY")
        if ready not in done:
            connection.cancel()
            raise TimeoutError(f"no READY from the Discord gateway within {START_TIMEOUT:g}s")
        if client.get_guild(self.options.guild_id) is None:
            connection.cancel()
            app = client.application_id or 0
            raise RuntimeError(
                f"the bot is not a member of guild {self.options.guild_id}: "
                f"invite it with {invite_url(app)}"
            )

    async def _supervise(self, client: HolmClient) -> None:
        """Watch the gateway connection; reconnect without the content intent if a later
        reconnect is refused it, and say so if the connection ends for good."""
        while not self._closing:
            try:
                await client.gateway_task
                return
            except asyncio.CancelledError:
                if self._closing:
                    return
                raise
            except discord.PrivilegedIntentsRequired:
                await client.close()
                self._prefix_off("no longer enabled for this application (gateway close 4014)")
                client = await self._connect()
            except Exception as error:
                self._detail = f"the Discord gateway connection ended: {error!r}"
                log.error(self._detail)
                return

    def _prefix_off(self, why: str) -> None:
        self.prefix_commands = False
        self._detail = PREFIX_OFF.format(why=why)
        log.warning(self._detail)

    async def close(self) -> None:
        """Stop taking commands, stop following operations, and disconnect."""
        self._closing = True
        await self.outcomes.close()
        for task in list(self._tasks):
            task.cancel()
        if self.client is not None:
            await self.client.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def status(self) -> AdapterStatus:
        client = self.client
        connected = bool(
            client is not None
            and not client.is_closed()
            and client.is_ready()
            and client.ws is not None
            and client.ws.open
        )
        return AdapterStatus(
            connected=connected,
            handlers_registered=client is not None,
            last_event_at=client.last_event_at if client is not None else None,
            detail=self._detail,
        )

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- events (called by HolmClient) ----------------------------------------------------

    def on_event(self) -> None:
        self.metrics.event_seen(Platform.DISCORD)

    async def on_ready(self, client: HolmClient) -> None:
        if client is not self.client:
            return
        self._readies += 1
        if self._readies > 1:
            self.metrics.reconnect(Platform.DISCORD)
        self._ready.set()
        if not self.prefix_commands:
            log.warning(self._detail)
        await self.reactions.reconcile(client)

    async def on_resumed(self, client: HolmClient) -> None:
        self.metrics.reconnect(Platform.DISCORD)
        await self.reactions.reconcile(client)

    async def on_message(self, client: HolmClient, message: discord.Message) -> None:
        if client.user is None or message.author.bot or self._closing:
            return
        if message.guild is None or message.guild.id != self.options.guild_id:
            return
        prefix = self.options.prefix if self.prefix_commands else ""
        text = command_text(message.content, prefix, client.user.id)
        if text is None:
            return
        self.reactions.remember(message.author)
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
        if outcome.duplicate:
            return
        answer = MessageAnswer(message)
        await self.outcomes.deliver(
            answer, outcome, place=message.channel.id, requester=mention(user)
        )

    async def on_reaction(
        self, client: HolmClient, payload: discord.RawReactionActionEvent, stamp: Stamp | None
    ) -> None:
        if payload.guild_id == self.options.guild_id and not self._closing:
            await self.reactions.on_reaction(client, payload, stamp)

    async def on_button(self, interaction: discord.Interaction[Any], command: str) -> None:
        await self.run_interaction(interaction, command)

    async def run_interaction(self, interaction: discord.Interaction[Any], text: str) -> None:
        """A slash command or a button click: `text` run as the user, answered once."""
        if self._closing:
            return
        self.reactions.remember(interaction.user)
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
        answer = InteractionAnswer(interaction)
        outcome = await answer.run(self.layer.handle(invocation))
        if outcome.duplicate:
            return
        await self.outcomes.deliver(answer, outcome, place=channel_id, requester=mention(user))

    async def _tree_error(self, interaction: discord.Interaction[Any], error: Exception) -> None:
        log.error("slash command failed", exc_info=error)
        if not interaction.response.is_done():
            with contextlib.suppress(discord.HTTPException):
                await interaction.response.send_message(
                    "that command failed; see the bot's log", ephemeral=True
                )

    def _interest(self) -> frozenset[str]:
        return self.layer.policy.groups_of_interest(Platform.DISCORD)

    # --- notices ----------------------------------------------------------------------------

    async def _show_notices(self) -> None:
        async for notice in self.layer.subscribe(Platform.DISCORD):
            try:
                await self._show(notice)
            except Exception:  # one notice that cannot be shown must not silence the rest
                log.exception("showing a %s notice on Discord failed", notice.kind)

    async def _show(self, notice: Notice) -> None:
        outcome = notice.outcome
        place = int(notice.thread or notice.channel)
        requester = mention_key(notice.requester)
        if notice.kind in EDITS:
            for ref in notice.refs:
                if ref.platform is Platform.DISCORD:
                    await self.outcomes.edit(ref, outcome.reply)
        elif notice.kind is NoticeKind.OPERATION_RESUMED:
            if outcome.progress is None or notice.operation_id is None:
                return
            existing = next((r for r in notice.refs if r.platform is Platform.DISCORD), None)
            self.outcomes.spawn(
                self.outcomes.follow(
                    int(existing.thread or existing.channel) if existing else place,
                    outcome.progress,
                    notice.operation_id,
                    title=outcome.reply.title,
                    requester=requester,
                    existing=existing,
                )
            )
        else:  # APPROVED_RUNNING, ROLLBACK_PROPOSED: a new message in the channel
            channel = self.outcomes.client.get_partial_messageable(place)  # type: ignore[union-attr]
            await self.outcomes.deliver(
                ChannelAnswer(channel), outcome, place=place, requester=requester
            )
