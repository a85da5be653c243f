"""Serving the sandbox's aiohttp applications on loopback, and the kubeconfig that finds them."""

from __future__ import annotations

from pathlib import Path

import yaml
from aiohttp import web


async def serve_app(app: web.Application, port: int = 0) -> tuple[web.AppRunner, str]:
    """Serve `app` on 127.0.0.1:`port` (0: a free one); the runner (to clean up) and base URL.

    Handlers are cancelled when their client goes away, so a dropped watch or a hanging
    health probe does not outlive its connection.
    """
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


def write_kubeconfig(path: Path, server: str, namespace: str = "default") -> Path:
    """A kubeconfig that points kubectl and the official client at `server`.

    Like `kubectl proxy`, the sandbox serves plain HTTP on loopback without authentication:
    kubectl sends no bearer token over plain HTTP anyway.
    """
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "holmos-sandbox", "cluster": {"server": server}}],
        "users": [{"name": "holmbot", "user": {}}],
        "contexts": [
            {
                "name": "holmos-sandbox",
                "context": {"cluster": "holmos-sandbox", "user": "holmbot", "namespace": namespace},
            }
        ],
        "current-context": "holmos-sandbox",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
