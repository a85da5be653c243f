"""`/health`, `/ready` and `/metrics` on the probes port (Kubernetes probes, Prometheus).

- `/health`: 200 while the event loop answers.
- `/ready`: 200 only when the state file is open, the Kubernetes API answered within
  `probes.kubernetes_stale_seconds`, and every chat adapter is connected with its handlers
  registered; else 503. The JSON body names each part and why it is not ready.
- `/metrics`: the bot's registry in Prometheus' text format.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot.adapter import ChatAdapter
from bot.metrics import Metrics
from bot.settings import ProbesConfig
from commands.clients.kube import KubeError
from commands.flow.layer import CommandLayer

log = logging.getLogger(__name__)
KUBE_CHECK_SECONDS = 15.0


class Probes:
    """The probes server and the Kubernetes check behind `/ready`."""

    def __init__(
        self,
        settings: ProbesConfig,
        layer: CommandLayer,
        adapters: Mapping[str, ChatAdapter],
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.layer = layer
        self.adapters = adapters
        self.metrics = metrics
        self.kube_answered_at: float | None = None
        self.kube_problem = "not asked yet"
        self._runner: web.AppRunner | None = None
        self._checker: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Serve; return the port bound (the setting, or a free one for port 0)."""
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/ready", self._ready)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        self._checker = asyncio.create_task(self._check_kube())
        return int(self._runner.addresses[0][1])

    async def close(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checker
        if self._runner is not None:
            await self._runner.cleanup()

    async def _check_kube(self) -> None:
        interval = min(KUBE_CHECK_SECONDS, self.settings.kubernetes_stale_seconds / 3)
        while True:
            try:
                await self.layer.clients.kube.deployment_names()
                self.kube_answered_at, self.kube_problem = time.monotonic(), ""
            except KubeError as error:
                self.kube_problem = str(error)
            await asyncio.sleep(interval)

    def parts(self) -> dict[str, dict[str, object]]:
        """Each part of readiness: ready or not, and why not."""
        state_open = not self.layer.state.closed
        parts: dict[str, dict[str, object]] = {
            "state": {"ready": state_open, "detail": "" if state_open else "state file closed"}
        }
        answered = self.kube_answered_at
        fresh = answered is not None and (
            time.monotonic() - answered <= self.settings.kubernetes_stale_seconds
        )
        why = self.kube_problem or "the Kubernetes API has not answered lately"
        parts["kubernetes"] = {"ready": fresh, "detail": "" if fresh else why}
        for name, adapter in self.adapters.items():
            status = adapter.status()
            detail = status.detail or ("" if status.connected else "not connected")
            parts[name] = {"ready": status.ready, "detail": "" if status.ready else detail}
        return parts

    async def _health(self, _: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def _ready(self, _: web.Request) -> web.Response:
        parts = self.parts()
        ready = all(part["ready"] for part in parts.values())
        return web.json_response({"ready": ready, "parts": parts}, status=200 if ready else 503)

    async def _metrics(self, _: web.Request) -> web.Response:
        self.metrics.refresh()
        try:
            pending = await self.layer.state.pending_requests()
            tracked = await self.layer.state.unfinished_operations()
        except Exception:
            log.exception("could not read the state file for /metrics")
        else:
            self.metrics.approvals_pending.set(len(pending))
            self.metrics.operations_tracked.set(len(tracked))
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
