"""The sandbox's API server alone, over a store with the `holm` namespace, and its clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from kubernetes import client, config

from sandbox.apiserver import ApiServer
from sandbox.resources import NAMESPACES
from sandbox.serving import serve_app, write_kubeconfig
from sandbox.store import ObjectStore


@dataclass
class Api:
    store: ObjectStore
    url: str
    kubeconfig: Path
    apps: client.AppsV1Api
    core: client.CoreV1Api
    server: ApiServer
    api_client: client.ApiClient

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url)


@asynccontextmanager
async def served_api(directory: Path) -> AsyncIterator[Api]:
    """Serve a fresh store on loopback; its kubeconfig goes into `directory`."""
    store = ObjectStore()
    store.create(NAMESPACES, {"metadata": {"name": "holm"}})
    server = ApiServer(store)
    runner, url = await serve_app(server.app)
    kubeconfig = write_kubeconfig(directory / "kubeconfig", url, "holm")
    api_client = config.new_client_from_config(str(kubeconfig))
    try:
        yield Api(
            store,
            url,
            kubeconfig,
            client.AppsV1Api(api_client),
            client.CoreV1Api(api_client),
            server,
            api_client,
        )
    finally:
        api_client.close()
        await runner.cleanup()
