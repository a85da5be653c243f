"""Local HTTP servers for the command layer's client tests: real apps and faulty ones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from commands.clients.kube import Kube
from commands.core.config import Config, HealthConfig, KubernetesConfig
from sandbox.apiserver import ApiServer
from sandbox.health import HealthBoard, build_health_app, service_url_template
from sandbox.podlogs import PodLogs
from sandbox.serving import write_kubeconfig
from tests.commands.servers import Serve
from tests.commands.world import NAMESPACE, World


@pytest.fixture
async def world(serve: Serve, tmp_path: Path) -> AsyncIterator[World]:
    """The sandbox API server over a hand-built store, a health board, and the bot's `Kube`."""
    store = World.new_store()
    logs = PodLogs(store)
    api_url = await serve(ApiServer(store, logs).app)
    board = HealthBoard()
    health_url = await serve(build_health_app(board))
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api_url, NAMESPACE)
    config = Config(
        namespace=NAMESPACE,
        kubernetes=KubernetesConfig(kubeconfig=kubeconfig, request_timeout_seconds=5),
        health=HealthConfig(
            service_url_template=service_url_template(health_url), probe_timeout_seconds=0.5
        ),
    )
    kube = await Kube.from_config(config.kubernetes, NAMESPACE)
    try:
        yield World(
            store=store, logs=logs, board=board, kube=kube, config=config, health_url=health_url
        )
    finally:
        await kube.close()
