"""Local HTTP servers for the command layer's client tests: real apps and faulty ones."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.commands.servers import Serve, start_app


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Serve aiohttp apps on 127.0.0.1 (a free port each); yields `serve(app) -> base URL`."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner, url = await start_app(app)
        runners.append(runner)
        return url

    yield start
    for runner in reversed(runners):
        await runner.cleanup()


@pytest.fixture
def refused_url() -> str:
    """A loopback URL nothing listens on: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
