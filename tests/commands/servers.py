"""Faulty HTTP servers for client tests: every route fails the same way."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

Serve = Callable[[web.Application], Awaitable[str]]
"""The `serve` fixture: serves an app on loopback and returns its base URL."""


def fault_app(kind: str) -> web.Application:
    """An app whose every route fails the same way: `500`, `hang`, `garbage` or `401`."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if kind == "hang":
            await asyncio.sleep(3600)
        if kind == "garbage":
            return web.Response(text="<html>proxy error</html>", content_type="text/html")
        if kind == "401":
            return web.json_response({"errors": [{"code": "UNAUTHORIZED"}]}, status=401)
        return web.json_response({"error": "internal error"}, status=500)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app
