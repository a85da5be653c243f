"""The Slack Web API client: one configurable base URL, every call counted, 429s waited out.

The `AsyncWebClient` is built with the configured base URL (GovSlack, a proxy, a test server)
and given to the bolt app, whose per-request clients copy it, its aiohttp session and its
retry handlers. The session traces every request, so `/metrics` counts each call by method and
status, bolt's own (`auth.test`) and the Socket Mode client's (`apps.connections.open`) too.

429s are handled here and only here: the client keeps slack-sdk's default retry handlers
(connection errors only, no rate-limit handler), `once` raises `RateLimited` with the
`Retry-After` seconds, and `call` waits them out. The progress messages use `once`, so that a
newer state replaces a waiting one instead of an old state being sent after the wait. (The one
call slack-sdk's Socket Mode client makes on its own, `apps.connections.open` when it
reconnects, it waits out itself; nothing here retries that one.)
"""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from yarl import URL

from bot.metrics import Metrics
from commands.core.models import Platform

log = logging.getLogger(__name__)

MAX_WAITS = 10  # `call` gives up after this many 429s in a row
DEFAULT_RETRY_AFTER = 1.0
NOT_A_MEMBER = frozenset({"not_in_channel", "channel_not_found"})


class RateLimited(Exception):
    """Slack answered 429: try again after `retry_after` seconds."""

    def __init__(self, method: str, retry_after: float) -> None:
        super().__init__(f"{method} rate limited; retry after {retry_after:g}s")
        self.retry_after = retry_after


def error_code(error: SlackApiError) -> str:
    """Slack's error string (`not_in_channel`, `message_not_found`...) of a failed call."""
    data = getattr(error.response, "data", None)
    return str(data.get("error", "")) if isinstance(data, dict) else ""


def retry_after(error: SlackApiError) -> float | None:
    """The seconds to wait when `error` is a 429, else None."""
    if getattr(error.response, "status_code", None) != 429:
        return None
    headers = {k.lower(): v for k, v in (getattr(error.response, "headers", None) or {}).items()}
    value = headers.get("retry-after")
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return max(0.0, float(value)) if value is not None else DEFAULT_RETRY_AFTER
    except ValueError:
        return DEFAULT_RETRY_AFTER


def method_of(url: URL, api_path: str) -> str:
    """`chat.update` for a Web API URL, `upload` for any other (a file upload URL)."""
    path = url.path
    if path.startswith(api_path):
        return path[len(api_path) :].strip("/") or "(root)"
    return "upload"


def tracing(metrics: Metrics, api_path: str) -> aiohttp.TraceConfig:
    """Counts every request by method and status; 429s as rate limited; no answer as errors."""
    trace = aiohttp.TraceConfig()

    async def ended(_: Any, __: SimpleNamespace, params: aiohttp.TraceRequestEndParams) -> None:
        method = method_of(params.url, api_path)
        metrics.chat_call(Platform.SLACK, method, params.response.status)
        if params.response.status == 429:
            metrics.rate_limited(Platform.SLACK, method)

    async def failed(
        _: Any, __: SimpleNamespace, params: aiohttp.TraceRequestExceptionParams
    ) -> None:
        metrics.chat_error(Platform.SLACK, method_of(params.url, api_path))

    trace.on_request_end.append(ended)
    trace.on_request_exception.append(failed)
    return trace


class SlackApi:
    """The bot's Web API client and the two ways of calling it."""

    def __init__(self, token: str, base_url: str, metrics: Metrics) -> None:
        self.base_url = base_url
        self._token = token
        self._metrics = metrics
        self.session: aiohttp.ClientSession | None = None
        self.client: AsyncWebClient | None = None

    async def open(self) -> AsyncWebClient:
        """The client, on an aiohttp session of its own (made in the running loop)."""
        api_path = URL(self.base_url).path
        self.session = aiohttp.ClientSession(trace_configs=[tracing(self._metrics, api_path)])
        self.client = AsyncWebClient(
            token=self._token, base_url=self.base_url, session=self.session
        )
        return self.client

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    def _client(self) -> AsyncWebClient:
        if self.client is None:
            raise RuntimeError("the Slack client is not open")
        return self.client

    async def once(self, method: str, **arguments: Any) -> AsyncSlackResponse:
        """One call of slack-sdk's `method` (e.g. `chat_update`); a 429 raises `RateLimited`."""
        call = getattr(self._client(), method)
        try:
            return await call(**{k: v for k, v in arguments.items() if v is not None})
        except SlackApiError as error:
            wait = retry_after(error)
            if wait is None:
                raise
            raise RateLimited(method, wait) from error

    async def call(self, method: str, **arguments: Any) -> AsyncSlackResponse:
        """`once`, waiting out up to `MAX_WAITS` 429s for their `Retry-After`."""
        for _ in range(MAX_WAITS):
            try:
                return await self.once(method, **arguments)
            except RateLimited as limited:
                log.info("%s; waiting", limited)
                await asyncio.sleep(limited.retry_after)
        return await self.once(method, **arguments)
