"""Local HTTP servers for the command layer's client tests: real apps and faulty ones."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from commands.config import Config, HealthConfig, KubernetesConfig
from commands.kube import Kube
from sandbox.apiserver import ApiServer
from sandbox.health import HealthBoard, build_health_app, service_url_template
from sandbox.podlogs import PodLogs
from tests.commands.servers import Serve, start_app
from tests.commands.world import NAMESPACE, World, write_kubeconfig


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
async def world(serve: Serve, tmp_path: Path) -> AsyncIterator[World]:
    """The sandbox API server over a hand-built store, a health board, and the bot's `Kube`."""
    store, token = World.new_store(), secrets.token_urlsafe(12)
    logs = PodLogs(store)
    api_url = await serve(ApiServer(store, logs).app)
    board = HealthBoard()
    health_url = await serve(build_health_app(board))
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api_url, token)
    config = Config(
        namespace=NAMESPACE,
        kubernetes=KubernetesConfig(kubeconfig=kubeconfig, request_timeout_seconds=5),
        health=HealthConfig(
            service_url_template=service_url_template(health_url), probe_timeout_seconds=0.5
        ),
    )
    kube = await Kube.from_config(config.kubernetes, NAMESPACE)
    try:
        yield World(store, logs, board, kube, config, health_url)
    finally:
        await kube.close()
