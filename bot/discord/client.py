"""The discord.py client: intents, the command tree, buttons, events, and HTTP metrics.

`HolmClient` is a plain `discord.Client` that hands every event it cares about to `Handlers`
(the adapter). Reaction events are stamped with the gateway session and sequence number they
arrived with (read while discord.py dispatches them), which is what makes a replayed event
recognisable. Every REST call is counted in the metrics through aiohttp's tracing, with ids and
tokens taken out of the route.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Protocol

import aiohttp
import discord
from discord import app_commands

from bot.discord.buttons import ActionButton
from commands.core.models import Platform

_ID = re.compile(r"^\d{5,}$")
_TOKEN_AFTER = {"interactions", "webhooks"}  # /interactions/{id}/{token}, /webhooks/{id}/{token}


@dataclass(frozen=True)
class Stamp:
    """Where a gateway event came from: its session and sequence number."""

    session_id: str
    sequence: int


class Handlers(Protocol):
    """What the adapter does with the events the client passes on."""

    async def on_ready(self, client: HolmClient) -> None: ...
    async def on_resumed(self, client: HolmClient) -> None: ...
    async def on_message(self, client: HolmClient, message: discord.Message) -> None: ...
    async def on_reaction(
        self, client: HolmClient, payload: discord.RawReactionActionEvent, stamp: Stamp | None
    ) -> None: ...
    async def on_button(self, interaction: discord.Interaction[Any], command: str) -> None: ...
    def on_event(self) -> None: ...


class Metrics(Protocol):
    def chat_call(self, platform: Platform, method: str, status: int | str) -> None: ...
    def rate_limited(self, platform: Platform, method: str) -> None: ...
    def chat_error(self, platform: Platform, method: str) -> None: ...
    def reconnect(self, platform: Platform) -> None: ...
    def event_seen(self, platform: Platform) -> None: ...


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

    async def ended(_: Any, __: SimpleNamespace, params: aiohttp.TraceRequestEndParams) -> None:
        status = params.response.status
        metrics.chat_call(Platform.DISCORD, name(params), status)
        if status == 429:
            metrics.rate_limited(Platform.DISCORD, name(params))

    async def failed(
        _: Any, __: SimpleNamespace, params: aiohttp.TraceRequestExceptionParams
    ) -> None:
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
        trace: aiohttp.TraceConfig | None = None,
        guild_ready_timeout: float = 2.0,
    ) -> None:
        super().__init__(
            intents=intents,
            http_trace=trace,
            guild_ready_timeout=guild_ready_timeout,
            allowed_mentions=discord.AllowedMentions(everyone=False, roles=False, users=True),
        )
        self.handlers = handlers
        self.tree: app_commands.CommandTree[HolmClient] = app_commands.CommandTree(self)
        self.last_event_at: float | None = None
        self.gateway_task: asyncio.Task[None] | None = None  # `connect()`, run by the adapter

    async def setup_hook(self) -> None:
        self.add_dynamic_items(ActionButton)

    def dispatch(self, event: str, /, *args: Any, **kwargs: Any) -> None:
        """Pass events on; reactions with the session and sequence they arrived with."""
        self.last_event_at = time.time()
        self.handlers.on_event()
        super().dispatch(event, *args, **kwargs)
        if event in ("raw_reaction_add", "raw_reaction_remove"):
            ws = self.ws
            stamp = None
            if ws is not None and ws.session_id is not None and ws.sequence is not None:
                stamp = Stamp(ws.session_id, ws.sequence)
            super().dispatch("stamped_reaction", args[0], stamp)

    async def on_ready(self) -> None:
        await self.handlers.on_ready(self)

    async def on_resumed(self) -> None:
        await self.handlers.on_resumed(self)

    async def on_message(self, message: discord.Message) -> None:
        await self.handlers.on_message(self, message)

    async def on_stamped_reaction(
        self, payload: discord.RawReactionActionEvent, stamp: Stamp | None
    ) -> None:
        await self.handlers.on_reaction(self, payload, stamp)

    async def on_button(self, interaction: discord.Interaction[Any], command: str) -> None:
        await self.handlers.on_button(interaction, command)
