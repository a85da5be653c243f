"""How Slack reaches the bot: Socket Mode (the default) with a watchdog, or signed HTTP.

Socket Mode: bolt's `AsyncSocketModeHandler` (aiohttp) asks `apps.connections.open` for a
WebSocket URL with the app-level token and connects; Slack says `hello` on every new connection,
then sends envelopes, each acknowledged with its `envelope_id`. slack-sdk reconnects on its own
when the socket closes or its pings go unanswered, but a connection can also go silent: open and
answering pings, yet never saying hello or delivering anything (bolt-python#1529). The watchdog
looks every `watchdog_interval`: a connection that is down, or that has not said hello within
`hello_timeout` of being made, is replaced (`connect_to_new_endpoint(force=True)`), again each
`hello_timeout` until a hello comes. Every hello after the first is a reconnect: counted in the
metrics, and the gap (from when the loss was noticed to the hello) shows in the status.

HTTP: bolt's aiohttp app on `http_host:http_port` at `/slack/events`; bolt checks each request's
signature (`v0=` HMAC-SHA256 of `v0:TIMESTAMP:BODY` with the signing secret) and answers 401 to a
bad one or one older than five minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from aiohttp import WSMessage, WSMsgType, web
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

from bot.acks import Unacked
from bot.metrics import Metrics
from bot.slack.api import error_code
from bot.slack.options import COMMANDS_PATH, SlackOptions
from commands.core.models import Platform

log = logging.getLogger(__name__)


class SlackRefused(Exception):
    """Slack refused a token at start: the message says which setting to check."""


class Connection(Protocol):
    connected: bool

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    def detail(self) -> str: ...


def _at(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%H:%M:%S UTC")


class SocketConnection:
    """Socket Mode, watched."""

    def __init__(
        self,
        app: AsyncApp,
        options: SlackOptions,
        metrics: Metrics,
        unacked: Unacked | None = None,
        on_reconnect: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        if options.app_token is None:
            raise ValueError("Socket Mode needs the app-level token (HOLMBOT_SLACK__APP_TOKEN)")
        self.options = options
        self.metrics = metrics
        self.unacked = unacked if unacked is not None else Unacked()
        self.on_reconnect = on_reconnect  # run after each hello but the first
        self._after_reconnect: set[asyncio.Task[object]] = set()
        self.handler = AsyncSocketModeHandler(
            app, options.app_token.get_secret_value(), ping_interval=options.ping_interval
        )
        client = self.handler.client
        client.on_message_listeners.append(self._on_frame)  # as it is read off the socket
        client.message_listeners.append(self._on_message)
        client.socket_mode_request_listeners.append(self._on_acked)  # after bolt's, which acks
        client.on_close_listeners.append(self._on_close)
        self.connected = False
        self.reconnects = 0
        self.last_gap: float | None = None  # seconds without a connection, the last time
        self._reconnected_at: float | None = None
        self._lost_at: float | None = None  # time.time() the loss was noticed
        self._why = ""
        self._hello_session: object | None = None  # the connection the last hello came on
        self._session: object | None = None  # the connection the watchdog last saw
        self._session_since = time.monotonic()
        self._forced_at = 0.0
        self._forcing: asyncio.Task[None] | None = None
        self._hello = asyncio.Event()
        self._watchdog: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect, and wait (bounded) for the first hello; the watchdog takes it from there.

        The first WebSocket URL is asked for here, so that a refused app token fails the start
        in words (slack-sdk itself would ask again and again)."""
        client = self.handler.client
        try:
            opened = await client.web_client.apps_connections_open(app_token=client.app_token)
        except SlackApiError as error:
            raise SlackRefused(
                f"Slack refused the app-level token ({error_code(error) or error}): check "
                "HOLMBOT_SLACK__APP_TOKEN (an xapp- token with connections:write)"
            ) from error
        client.wss_uri = opened["url"]
        await self.handler.connect_async()
        try:
            await asyncio.wait_for(self._hello.wait(), self.options.start_timeout)
        except TimeoutError:
            self._lose(f"no hello within {self.options.start_timeout:g}s of connecting")
            log.warning("Slack Socket Mode: %s", self._why)
        self._watchdog = asyncio.create_task(self._watch())

    async def close(self) -> None:
        for task in (self._watchdog, self._forcing):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.handler.close_async()
        self.connected = False

    def detail(self) -> str:
        if not self.connected:
            since = self._lost_at or time.time()
            return (
                f"Slack Socket Mode: {self._why or 'not connected'} since {_at(since)} "
                f"({time.time() - since:.1f}s); reconnecting"
            )
        if self.last_gap is not None and self._reconnected_at is not None:
            return (
                f"Slack Socket Mode reconnected {self.reconnects} time(s); the last gap was "
                f"{self.last_gap:.1f}s, ended {_at(self._reconnected_at)}"
            )
        return ""

    # --- what the socket says -----------------------------------------------------------------

    async def _on_frame(self, frame: WSMessage) -> None:
        """An envelope read off the socket: its ack is due (bolt's listener sends it)."""
        if frame.type is not WSMsgType.TEXT or '"envelope_id"' not in frame.data:
            return
        try:
            envelope = json.loads(frame.data)
        except ValueError:
            return
        # what slack-sdk hands to bolt as a request (`SocketModeRequest.from_dict`); the rest
        # is never acked
        if (
            isinstance(envelope, dict)
            and all(key in envelope for key in ("type", "envelope_id", "payload"))
            and envelope["type"] != "disconnect"
        ):
            self.unacked.taken(envelope["envelope_id"])

    async def _on_acked(self, _client: Any, request: Any) -> None:
        self.unacked.answered(request.envelope_id)

    async def _on_message(self, client: Any, message: dict[str, Any], _raw: str | None) -> None:
        if message.get("type") != "hello":
            return
        now = time.time()
        self._hello_session = client.current_session
        if self._hello.is_set():
            self.reconnects += 1
            self.metrics.reconnect(Platform.SLACK)
            self.last_gap = now - (self._lost_at or now)
            self._reconnected_at = now
            log.info("Slack Socket Mode reconnected after %.1fs", self.last_gap)
            if self.on_reconnect is not None:
                task = asyncio.create_task(self.on_reconnect())
                self._after_reconnect.add(task)
                task.add_done_callback(self._reconnect_done)
        self._hello.set()
        self._lost_at, self._why = None, ""
        self.connected = True

    def _reconnect_done(self, task: asyncio.Task[object]) -> None:
        self._after_reconnect.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("after a reconnect", exc_info=task.exception())

    async def _on_close(self, _message: Any) -> None:
        self._lose("the connection was closed")

    def _lose(self, why: str) -> None:
        """Not connected (any more), and why now; the gap runs from the first loss noticed."""
        if self._lost_at is None:
            self._lost_at = time.time()
        if why != self._why:
            log.warning("Slack Socket Mode: %s", why)
        self._why = why
        self.connected = False

    # --- the watchdog -------------------------------------------------------------------------

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.options.watchdog_interval)
            try:
                await self.check()
            except Exception:
                log.exception("the Slack Socket Mode watchdog failed to look")

    async def check(self) -> None:
        """Look at the connection once; replace it when it has been down or silent too long."""
        client = self.handler.client
        session = client.current_session
        now = time.monotonic()
        if session is not self._session:
            self._session, self._session_since = session, now
        alive = await client.is_connected()
        if alive and session is self._hello_session:
            return
        self._lose("disconnected" if not alive else "connected, but Slack has not said hello")
        waited = now - max(self._session_since, self._forced_at)
        if waited < self.options.hello_timeout:
            return
        if self._forcing is None or self._forcing.done():
            self._forced_at = now
            log.warning("Slack Socket Mode: %s; replacing the connection", self._why)
            self._forcing = asyncio.create_task(client.connect_to_new_endpoint(force=True))


class HttpConnection:
    """Slack's requests over HTTP, verified by bolt."""

    def __init__(self, app: AsyncApp, options: SlackOptions) -> None:
        if options.signing_secret is None:
            raise ValueError("HTTP mode needs the signing secret (HOLMBOT_SLACK__SIGNING_SECRET)")
        self.app = app
        self.options = options
        self.connected = False
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        runner = web.AppRunner(self.app.web_app(path=COMMANDS_PATH))
        await runner.setup()
        site = web.TCPSite(runner, self.options.http_host, self.options.http_port)
        await site.start()
        self._runner = runner
        port = runner.addresses[0][1] if runner.addresses else self.options.http_port
        self.url = f"http://{self.options.http_host}:{port}{COMMANDS_PATH}"
        self.connected = True
        log.info("Slack requests are taken at %s", self.url)

    async def close(self) -> None:
        self.connected = False
        if self._runner is not None:
            await self._runner.cleanup()

    def detail(self) -> str:
        return "" if self.connected else "the Slack HTTP endpoint is not listening"
