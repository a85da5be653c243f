"""The discord.py client: passes the events holmbot cares about on, counts REST calls.

`HolmClient` is a plain `discord.Client` (slash commands live on its `CommandTree`, buttons
are a dynamic item) that hands every event to `Handlers` (the adapter). Reaction events are
stamped with the gateway session and sequence number they arrived with, read while
discord.py dispatches them: a RESUME replays missed events with their original numbers, so
the stamp makes a replayed event recognisable. Every REST call is counted in the metrics
through aiohttp's tracing, by route without ids, tokens or emoji.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import discord
from discord import app_commands

from bot.discord.buttons import ActionButton
from bot.metrics import Metrics
from commands.core.models import Platform

_ID = re.compile(r"^\d{5,}$")
_TOKEN_AFTER = {"interactions", "webhooks"}  # /interactions/{id}/{token}, /webhooks/{id}/{token}
REACTIONS = ("raw_reaction_add", "raw_reaction_remove")


@dataclass(frozen=True)
class Stamp:
    """Where a gateway event came from: its session and sequence number."""

    session_id: str
    sequence: int


class Handlers(Protocol):
    """What the adapter does with the events the client passes on."""

    async def on_ready(self) -> None: ...
    async def on_guild_available(self, guild: discord.Guild) -> None: ...
    async def on_resumed(self) -> None: ...
    def on_disconnect(self) -> None: ...
    def on_interaction(self, interaction: discord.Interaction[Any]) -> None: ...
    async def on_message(self, message: discord.Message) -> None: ...
    async def on_reaction(
        self, payload: discord.RawReactionActionEvent, stamp: Stamp | None
    ) -> None: ...
    async def on_button(self, interaction: discord.Interaction[Any], command: str) -> None: ...
    def on_event(self) -> None: ...


def route(method: str, path: str) -> str:
    """`PATCH /channels/{id}/messages/{id}`: a REST call without ids, tokens or emoji."""
    parts = path.split("/")
    for index, part in enumerate(parts):
        before = parts[index - 2] if index >= 2 else ""
        if _ID.match(part):
            parts[index] = "{id}"
        elif before in _TOKEN_AFTER and part not in ("messages", "callback"):
            parts[index] = "{token}"
        elif index and parts[index - 1] == "reactions":
            parts[index] = "{emoji}"
    return f"{method} {'/'.join(parts)}"


def http_trace(metrics: Metrics, api_path: str) -> aiohttp.TraceConfig:
    """Counts every REST call by route and status; 429s also as rate limited."""
    trace = aiohttp.TraceConfig()

    def name(params: Any) -> str:
        return route(params.method, params.url.path.removeprefix(api_path))

    async def ended(_: Any, __: Any, params: aiohttp.TraceRequestEndParams) -> None:
        status = params.response.status
        metrics.chat_call(Platform.DISCORD, name(params), status)
        if status == 429:
            metrics.rate_limited(Platform.DISCORD, name(params))

    async def failed(_: Any, __: Any, params: aiohttp.TraceRequestExceptionParams) -> None:
        metrics.chat_error(Platform.DISCORD, name(params))

    trace.on_request_end.append(ended)
    trace.on_request_exception.append(failed)
    return trace


class HolmClient(discord.Client):
    """A discord.py client that passes its events to `handlers`."""

    def __init__(
        self,
        handlers: Handlers,
        *,
        intents: discord.Intents,
        trace: aiohttp.TraceConfig,
        guild_ready_timeout: float,
    ) -> None:
        super().__init__(
            intents=intents,
            http_trace=trace,
            guild_ready_timeout=guild_ready_timeout,
            max_messages=None,  # raw events carry what holmbot needs; nothing to cache
            allowed_mentions=discord.AllowedMentions(everyone=False, roles=False, users=True),
        )
        self.handlers = handlers
        self.tree: app_commands.CommandTree[HolmClient] = app_commands.CommandTree(self)
        self.last_event_at: float | None = None

    async def setup_hook(self) -> None:
        self.add_dynamic_items(ActionButton)

    def dispatch(self, event: str, /, *args: Any, **kwargs: Any) -> None:
        """Pass events on; reactions with the session and sequence they arrived with."""
        if event == "socket_event_type":  # one for every event the gateway sends
            self.last_event_at = time.time()
            self.handlers.on_event()
        elif event == "disconnect":  # told at once: also while closing, when no task may start
            self.handlers.on_disconnect()
        elif event == "interaction":  # as it arrives, before the command tree's task runs
            self.handlers.on_interaction(*args)
        super().dispatch(event, *args, **kwargs)
        if event in REACTIONS:
            ws, stamp = self.ws, None
            if ws is not None and ws.session_id is not None and ws.sequence is not None:
                stamp = Stamp(ws.session_id, ws.sequence)
            super().dispatch("stamped_reaction", args[0], stamp)

    async def on_ready(self) -> None:
        await self.handlers.on_ready()

    async def on_guild_available(self, guild: discord.Guild) -> None:
        await self.handlers.on_guild_available(guild)

    async def on_resumed(self) -> None:
        await self.handlers.on_resumed()

    async def on_message(self, message: discord.Message) -> None:
        await self.handlers.on_message(message)

    async def on_stamped_reaction(
        self, payload: discord.RawReactionActionEvent, stamp: Stamp | None
    ) -> None:
        await self.handlers.on_reaction(payload, stamp)

    async def on_button(self, interaction: discord.Interaction[Any], command: str) -> None:
        await self.handlers.on_button(interaction, command)
