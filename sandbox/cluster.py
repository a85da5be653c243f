"""The whole local HolmOS: API server, controllers, kubelet, registry, backup and health.

`Sandbox` starts everything on 127.0.0.1 with free ports, seeds it, writes `kubeconfig`,
`endpoints.json` and a ready bot config `holmbot.yaml` into its state directory, and stops
everything it started (the registry process included). `api_requests` lists every resource
request its Kubernetes API was sent, as RBAC sees it.
"""

from __future__ import annotations

import asyncio
import signal
import tempfile
from pathlib import Path
from types import TracebackType

import yaml
from aiohttp import web
from pydantic import BaseModel

from sandbox import seed
from sandbox.apiserver import ApiServer
from sandbox.backup import BackupService
from sandbox.clock import WorldClock
from sandbox.cluster_seed import registry_images, seed_cluster
from sandbox.controller import DeploymentController
from sandbox.demo_policy import demo_access
from sandbox.endpoints import EndpointsController
from sandbox.health import Behaviour, HealthBoard, aggregator_url, build_health_app
from sandbox.health import service_url_template as health_url_template
from sandbox.kubelet import Kubelet
from sandbox.recorder import ApiRequest
from sandbox.registry import RegistryProcess, seed_images
from sandbox.resources import PODS
from sandbox.serving import serve_app, write_kubeconfig
from sandbox.store import ObjectStore


class Endpoints(BaseModel):
    """Where each part of the sandbox listens (written as `endpoints.json`)."""

    kubernetes: str
    registry: str
    backup: str
    health_aggregator: str
    service_url_template: str


class Sandbox:
    """A running local HolmOS cluster: `async with Sandbox(state_dir, speed) as sandbox:`.

    `registry` may be an already running registry (tests share one); the sandbox then seeds
    it but leaves it running when it stops.
    """

    def __init__(
        self,
        state_dir: Path | None = None,
        speed: float = 1.0,
        *,
        registry: RegistryProcess | None = None,
        probe_timeout: float = 2.0,
    ) -> None:
        self._temp: tempfile.TemporaryDirectory[str] | None = None
        if state_dir is None:
            self._temp = tempfile.TemporaryDirectory(prefix="holmbot-sandbox-")
            state_dir = Path(self._temp.name)
        self.state_dir = Path(state_dir)
        self.clock = WorldClock(speed)
        self.store = ObjectStore()
        self._owns_registry = registry is None
        self.registry = registry or RegistryProcess(self.state_dir / "registry")
        self.health = HealthBoard({s.name: s.endpoint for s in seed.SERVICES})
        self.backup = BackupService(self.state_dir / "backup", speed=speed)
        self.controller = DeploymentController(self.store, self.clock)
        self.endpoints_controller = EndpointsController(self.store)
        self.kubelet: Kubelet | None = None
        self.api: ApiServer | None = None
        self.probe_timeout = probe_timeout
        self._runners: list[web.AppRunner] = []
        self._endpoints: Endpoints | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def bot_config_path(self) -> Path:
        return self.state_dir / "holmbot.yaml"

    @property
    def api_requests(self) -> list[ApiRequest]:
        """Every resource request the API server was sent so far, oldest first."""
        return list(self.api.requests) if self.api is not None else []

    @property
    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            raise RuntimeError("the sandbox is not running")
        return self._endpoints

    async def start(self) -> Sandbox:
        """Start and seed everything; returns once every part answers."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if not self.registry.running:
            await self.registry.start()
        await seed_images(self.registry.url, registry_images())
        self.kubelet = Kubelet(
            self.store, self.clock, self.registry.url, on_service_health=self._service_health
        )
        seed_cluster(self.store)
        self.controller.start()
        self.kubelet.start()
        self.endpoints_controller.start()
        self.api = ApiServer(self.store, self.kubelet.logs)
        api_url = await self._serve(self.api.app)
        backup_url = await self._serve(self.backup.build_app())
        health_url = await self._serve(
            build_health_app(self.health, probe_timeout=self.probe_timeout)
        )
        self._endpoints = Endpoints(
            kubernetes=api_url,
            registry=self.registry.url,
            backup=backup_url,
            health_aggregator=aggregator_url(health_url),
            service_url_template=health_url_template(health_url),
        )
        self._write_files()
        return self

    async def wait_started(self, timeout: float = 60.0) -> None:
        """Wait (bounded) until every pod's containers have left ContainerCreating."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not all(_started(pod) for pod in self.store.list(PODS)):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"sandbox pods not started within {timeout:g}s")
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        """Stop everything this sandbox started, in reverse order."""
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        await self.endpoints_controller.stop()
        if self.kubelet is not None:
            await self.kubelet.stop()
        await self.controller.stop()
        if self._owns_registry:
            await self.registry.stop()
        self._endpoints = None
        if self._temp is not None:
            self._temp.cleanup()

    async def __aenter__(self) -> Sandbox:
        try:
            return await self.start()
        except BaseException:
            await self.stop()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _serve(self, app: web.Application) -> str:
        runner, url = await serve_app(app)
        self._runners.append(runner)
        return url

    def _service_health(self, service: str, ok: bool) -> None:
        """The kubelet says a service runs (or no longer runs) an unhealthy image."""
        seeded = seed.service(service)
        if not ok:
            self.health.set(service, Behaviour.FAILING, reason="unhealthy image running")
        else:
            self.health.set(service, seeded.endpoint if seeded else Behaviour.OK)

    def _write_files(self) -> None:
        endpoints = self.endpoints
        write_kubeconfig(self.kubeconfig, endpoints.kubernetes, seed.NAMESPACE)
        (self.state_dir / "endpoints.json").write_text(endpoints.model_dump_json(indent=2))
        bot_config = {
            "namespace": seed.NAMESPACE,
            "kubernetes": {"kubeconfig": str(self.kubeconfig), "in_cluster": False},
            "registry": {"host": seed.REGISTRY_HOST, "url": endpoints.registry},
            "backup": {"url": endpoints.backup, "poll_interval_seconds": 0.5},
            "health": {
                "aggregator_url": endpoints.health_aggregator,
                "service_url_template": endpoints.service_url_template,
            },
            # a minute of world time: long enough for a leak or a crash to show
            "rollout": {"verify_seconds": round(self.clock.real(60), 2)},
            "protected_services": ["postgres"],
            "access": demo_access(),
            "state_dir": str(self.state_dir / "bot"),
        }
        self.bot_config_path.write_text(yaml.safe_dump(bot_config, sort_keys=False))


def _started(pod: dict) -> bool:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    waiting = [(s.get("state") or {}).get("waiting", {}).get("reason") for s in statuses]
    return bool(statuses) and "ContainerCreating" not in waiting


async def run_until_stopped(state_dir: Path | None, speed: float) -> None:
    """`holmbot sandbox`: run the sandbox in the foreground until SIGINT or SIGTERM."""
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    async with Sandbox(state_dir, speed) as sandbox:
        endpoints = sandbox.endpoints
        print(f"HolmOS sandbox running (state in {sandbox.state_dir}, speed x{speed:g})")
        print(f"  Kubernetes API     {endpoints.kubernetes}")
        print(f"  registry           {endpoints.registry}")
        print(f"  backup service     {endpoints.backup}")
        print(f"  health aggregator  {endpoints.health_aggregator}")
        print(f"  bot config         {sandbox.bot_config_path}")
        print(f"export KUBECONFIG={sandbox.kubeconfig}")
        print("Stop with Ctrl-C.", flush=True)
        await stopped.wait()
    print("sandbox stopped", flush=True)
