"""Fixtures every suite shares: one real registry per session, and a running sandbox."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from sandbox.cluster import Sandbox
from sandbox.cluster_seed import registry_images
from sandbox.registry import RegistryProcess, seed_images
from sandbox.serving import serve_app
from tests.commands.servers import Serve

SANDBOX_SPEED = 20.0


@pytest.fixture(autouse=True)
def _no_holmbot_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's HOLMBOT_* variables; tests set their own."""
    for name in list(os.environ):
        if name.startswith("HOLMBOT_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def shared_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """Debian's docker-registry, started and seeded once for the whole test session."""
    registry = RegistryProcess(tmp_path_factory.mktemp("registry"))

    async def start() -> None:
        await registry.start()
        await seed_images(registry.url, registry_images())

    asyncio.run(start())
    try:
        yield registry
    finally:
        asyncio.run(registry.stop())


@pytest.fixture
async def sandbox(shared_registry: RegistryProcess, tmp_path: Path) -> AsyncIterator[Sandbox]:
    """A fresh seeded HolmOS cluster (API server, controllers, kubelet, backup, health)."""
    async with Sandbox(
        tmp_path / "sandbox", SANDBOX_SPEED, registry=shared_registry, probe_timeout=1.0
    ) as running:
        yield running


@pytest.fixture
def refused_url() -> str:
    """A loopback URL nothing listens on: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Serve aiohttp apps on 127.0.0.1 (a free port each); yields `serve(app) -> base URL`."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner, url = await serve_app(app)
        runners.append(runner)
        return url

    yield start
    for runner in reversed(runners):
        await runner.cleanup()
