"""The kubelet of every sandbox node: runs the pods bound to a node through their real lifecycle.

A pod with `spec.nodeName` gets a sandbox and an IP (10.42.N.M, N per node), then each container
pulls its image from the real registry (`HEAD /v2/NAME/manifests/TAG`, then the manifest for
the image size), starts, is probed and, depending on what the seed says about its image, runs,
crashes (CrashLoopBackOff), leaks memory (OOMKilled) or turns unhealthy (readiness fails, the
liveness probe restarts it). A service whose seeded /health and /ready endpoints fail or hang
fails its readiness probes only: it keeps running, out of its Service's endpoints. Status,
events, back-offs and log lines follow the real kubelet 1.32 with containerd; every duration is
world time on the `WorldClock`.

The work happens in one asyncio task per pod, started and cancelled from store notifications;
the listener itself only books work.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import zlib
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from sandbox import seed
from sandbox.clock import WorldClock
from sandbox.events import record_event
from sandbox.podlogs import AppVoice, ContainerLog, PodLogs, voice_for
from sandbox.resources import NODES, PODS
from sandbox.seed import REGISTRY_HOST, Endpoint, ImageBehaviour
from sandbox.store import ApiError, Change, ObjectStore, now_rfc3339

Obj = dict[str, Any]
T = TypeVar("T")
ServiceHealthHook = Callable[[str, bool], None]

_log = logging.getLogger(__name__)

MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    )
)

# World-time figures, in seconds.
SANDBOX_SECONDS = 0.8  # pod sandbox and network set-up before the first pull
PULL_SECONDS = (0.6, 2.5)  # downloading a found image
RESOLVE_FAIL_SECONDS = 0.3  # a registry answering "not found"
SYNC_SECONDS = 1.5  # the next pod sync after a failure (ErrImagePull, an exited container)
STARTUP_LINE_SECONDS = 0.1
CRASH_AFTER_SECONDS = 3.0  # a `crash` image dies this long after starting
OOM_STEP_SECONDS = 4.0  # a leaking container logs its memory this often ...
OOM_STEPS = 10  # ... and hits its limit after this many steps
REQUEST_EVERY_SECONDS = (2.0, 9.0)
GRACEFUL_EXIT_SECONDS = 1.0  # a healthy service exits this long after SIGTERM
BACKOFF_INITIAL_SECONDS = 10.0
BACKOFF_MAX_SECONDS = 300.0
DEFAULT_GRACE_SECONDS = 30


class Kubelet:
    """Every node's kubelet: runs the pods the store binds to nodes.

    `registry_url` is the real registry's base URL (e.g. `http://127.0.0.1:5000`); images
    whose host is in `registry_hosts` (default the HolmOS registry) are pulled from it, and any
    other registry is unreachable from the sandbox's nodes. `on_service_health(service, ok)` is
    called with False when a pod of `service` starts running an unhealthy image and with True
    when the last such pod stops.
    """

    def __init__(
        self,
        store: ObjectStore,
        clock: WorldClock,
        registry_url: str,
        *,
        logs: PodLogs | None = None,
        registry_hosts: Iterable[str] = (REGISTRY_HOST,),
        on_service_health: ServiceHealthHook | None = None,
    ) -> None:
        self.store, self.clock = store, clock
        self.logs = logs if logs is not None else PodLogs(store)
        self.registry_url = registry_url.rstrip("/")
        self.registry_hosts = {*registry_hosts, httpx.URL(self.registry_url).netloc.decode()}
        self.on_service_health = on_service_health
        self.images: dict[tuple[str, str], str] = {}  # (node, image) -> imageID, per node
        self.rng = random.Random()
        self._workers: dict[str, _PodWorker] = {}
        self._ips_in_use: set[str] = set()
        self._next_host: dict[str, int] = {}
        self._unhealthy: Counter[str] = Counter()
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._listening = False

    def start(self) -> None:
        """Begin running pods: those already bound, and every one bound from now on."""
        if self._loop is not None:
            raise RuntimeError("kubelet already started")
        self._loop = asyncio.get_running_loop()
        self._client = httpx.AsyncClient(timeout=5.0)
        if not self._listening:
            self.store.add_listener(self._on_change)
            self._listening = True
        for pod in self.store.list(PODS):
            self._sync(pod)

    async def stop(self) -> None:
        """Cancel every pod's task and wait for them; pods stay as they are in the store."""
        self._loop = None
        self._workers.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._ips_in_use.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def world_now(self) -> float:
        """A monotonic world-time reading in seconds."""
        return asyncio.get_running_loop().time() * self.clock.speed

    # store notifications

    def _on_change(self, change: Change) -> None:
        if self._loop is None or change.resource != PODS:
            return
        if change.type == "DELETED":
            worker = self._workers.pop(change.new["metadata"]["uid"], None)
            if worker is not None:
                worker.cancel()
                self._release(worker)
            return
        self._sync(change.new)

    def _sync(self, pod: Obj) -> None:
        meta, uid = pod["metadata"], pod["metadata"]["uid"]
        worker = self._workers.get(uid)
        if worker is None:
            phase = (pod.get("status") or {}).get("phase")
            if not pod.get("spec", {}).get("nodeName") or phase in ("Succeeded", "Failed"):
                return
            worker = self._workers[uid] = _PodWorker(self, pod)
            worker.tasks.append(self._spawn(worker.run(), f"kubelet {uid}"))
        if meta.get("deletionTimestamp") and not worker.terminating:
            grace = meta.get("deletionGracePeriodSeconds")
            worker.terminate(grace)

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        assert self._loop is not None
        task = self._loop.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _release(self, worker: _PodWorker) -> None:
        self.logs.forget(worker.uid)
        if worker.pod_ip:
            self._ips_in_use.discard(worker.pod_ip)

    # nodes and addresses

    def _node(self, name: str) -> tuple[int, Obj | None]:
        """The node's number (its place among the seeded nodes, else a hash) and object."""
        if name in seed.NODE_NAMES:
            index = seed.NODE_NAMES.index(name)
        else:
            index = len(seed.NODE_NAMES) + zlib.crc32(name.encode()) % 40
        return index, self.store.find(NODES, "", name)

    def host_ip(self, node_name: str) -> str:
        """The node's InternalIP, else its place in the HolmOS LAN (rpi1 is 192.168.8.197)."""
        index, node = self._node(node_name)
        for address in (node or {}).get("status", {}).get("addresses", []):
            if address.get("type") == "InternalIP":
                return str(address["address"])
        return f"192.168.8.{197 + index}"

    def allocate_ip(self, node_name: str) -> str:
        """A free pod IP from the node's /24 (its podCIDR, else 10.42.N.0/24)."""
        index, node = self._node(node_name)
        cidr = (node or {}).get("spec", {}).get("podCIDR") or f"10.42.{index}.0/24"
        prefix = cidr.split("/")[0].rsplit(".", 1)[0]
        for _ in range(253):
            last = self._next_host.get(node_name, 1)  # .1 is the node's bridge
            host = self._next_host[node_name] = last + 1 if last < 254 else 2
            ip = f"{prefix}.{host}"
            if ip not in self._ips_in_use:
                self._ips_in_use.add(ip)
                return ip
        raise RuntimeError(f"node {node_name} has no free pod IP in {cidr}")

    # images

    async def resolve(self, image: ImageRef) -> PulledImage | str:
        """Ask the registry for an image: what a pull finds, or containerd's error message."""
        name = image.canonical
        prefix = f'failed to pull and unpack image "{name}": failed to resolve reference "{name}"'
        if image.host not in self.registry_hosts:
            endpoint = "registry-1.docker.io" if image.host == "docker.io" else image.host
            return (
                f"rpc error: code = Unknown desc = {prefix}: failed to do request: Head "
                f'"https://{endpoint}/v2/{image.repository}/manifests/{image.reference}": '
                f"dial tcp: lookup {endpoint.split(':')[0]}: no such host"
            )
        path = f"/v2/{image.repository}/manifests/{image.reference}"
        shown = f"http://{image.host}{path}"
        assert self._client is not None
        headers = {"Accept": MANIFEST_ACCEPT}
        try:
            head = await self._client.head(self.registry_url + path, headers=headers)
            if head.status_code == 404:
                return f"rpc error: code = NotFound desc = {prefix}: {name}: not found"
            if head.status_code != 200:
                return (
                    f"rpc error: code = Unknown desc = {prefix}: unexpected status from HEAD "
                    f"request to {shown}: {head.status_code} {head.reason_phrase}"
                )
            manifest = await self._client.get(self.registry_url + path, headers=headers)
        except httpx.TimeoutException:
            return (
                f"rpc error: code = DeadlineExceeded desc = {prefix}: failed to do request: "
                f'Head "{shown}": context deadline exceeded'
            )
        except httpx.TransportError:
            return (
                f"rpc error: code = Unknown desc = {prefix}: failed to do request: Head "
                f'"{shown}": dial tcp {image.host}: connect: connection refused'
            )
        digest = head.headers.get("Docker-Content-Digest", "")
        return PulledImage(f"{image.host}/{image.repository}@{digest}", _image_size(manifest))

    # service health

    def _unhealthy_started(self, service: str) -> None:
        self._unhealthy[service] += 1
        if self._unhealthy[service] == 1 and self.on_service_health is not None:
            self.on_service_health(service, False)

    def _unhealthy_stopped(self, service: str) -> None:
        self._unhealthy[service] -= 1
        if self._unhealthy[service] <= 0:
            del self._unhealthy[service]
            if self.on_service_health is not None:
                self.on_service_health(service, True)


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference, normalized as containerd shows it."""

    host: str
    repository: str
    reference: str  # a tag, or a digest

    @classmethod
    def parse(cls, image: str) -> ImageRef:
        name, _, digest = image.partition("@")
        tag = ""
        if name.rfind(":") > name.rfind("/"):
            name, tag = name.rsplit(":", 1)
        first, slash, rest = name.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost"):
            host, repository = first, rest
        else:
            host, repository = "docker.io", name if slash else f"library/{name}"
        return cls(host, repository, digest or tag or "latest")

    @property
    def canonical(self) -> str:
        joiner = "@" if self.reference.startswith("sha256:") else ":"
        return f"{self.host}/{self.repository}{joiner}{self.reference}"

    @property
    def tag(self) -> str:
        return "" if self.reference.startswith("sha256:") else self.reference


@dataclass(frozen=True)
class PulledImage:
    image_id: str
    size: int


def _image_size(manifest: httpx.Response) -> int:
    try:
        body = manifest.json()
        parts = [body.get("config") or {}, *(body.get("layers") or [])]
        return sum(int(part.get("size", 0)) for part in parts) or len(manifest.content)
    except (ValueError, AttributeError, TypeError):
        return len(manifest.content)


def go_duration(seconds: float) -> str:
    """A duration as Go prints it: `812ms`, `10s`, `1m20s`, `5m0s`, `2.345s`."""
    millis = round(seconds * 1000)
    if millis < 1000:
        return f"{millis}ms"
    minutes, rest = divmod(millis, 60_000)
    hours, minutes = divmod(minutes, 60)
    text = f"{rest / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    return f"{hours}h{text}" if hours else text


class _Backoff:
    """client-go's flowcontrol.Backoff: 10s doubling to 300s, forgotten after 600s."""

    def __init__(self) -> None:
        self.duration = 0.0
        self.last_update = 0.0

    def _live(self, at: float) -> bool:
        return self.duration > 0 and at - self.last_update <= 2 * BACKOFF_MAX_SECONDS

    def remaining(self, since: float, now: float) -> float:
        """World seconds still to wait for a window that opened at `since`."""
        return max(self.duration - (now - since), 0.0) if self._live(since) else 0.0

    def next(self, at: float) -> None:
        live = self._live(at)
        self.duration = min(self.duration * 2, BACKOFF_MAX_SECONDS) if live else 0.0
        self.duration = self.duration or BACKOFF_INITIAL_SECONDS
        self.last_update = at


@dataclass
class _Exit:
    code: int
    reason: str


@dataclass
class _Container:
    """One container of a pod, as the kubelet tracks it between status writes."""

    spec: Obj
    image: ImageRef
    behaviour: ImageBehaviour
    endpoint: Endpoint
    service: str
    state: Obj = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: Obj = field(default_factory=dict)
    ready: bool = False
    restart_count: int = 0
    image_id: str = ""
    container_id: str = ""
    ends_at: float | None = None  # world time the running instance dies on its own, if it does
    exited: bool = False  # the running instance's process has died; nothing answers its port
    restart_backoff: _Backoff = field(default_factory=_Backoff)
    pull_backoff: _Backoff = field(default_factory=_Backoff)

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def status(self) -> Obj:
        status: Obj = {
            "name": self.name,
            "state": self.state,
            "lastState": self.last_state,
            "ready": self.ready,
            "restartCount": self.restart_count,
            "image": self.image.canonical if self.image_id else self.spec.get("image", ""),
            "imageID": self.image_id,
            "started": "running" in self.state,
        }
        if self.container_id:
            status["containerID"] = self.container_id
        return status


class _PodWorker:
    """Runs one pod: its sandbox, one loop per container, its termination."""

    def __init__(self, kubelet: Kubelet, pod: Obj) -> None:
        self.kubelet = kubelet
        meta, spec = pod["metadata"], pod["spec"]
        self.uid: str = meta["uid"]
        self.namespace: str = meta.get("namespace", "default")
        self.name: str = meta["name"]
        self.spec: Obj = spec
        self.node: str = spec["nodeName"]
        self.ref = f"{self.name}_{self.namespace}({self.uid})"
        self.tasks: list[asyncio.Task[None]] = []
        self.terminating = False
        self.pod_ip = ""
        self._stop = asyncio.Event()
        self._grace = float(spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS))
        self._start_time = now_rfc3339()
        self._host_ip = kubelet.host_ip(self.node)
        self._qos = _qos_class(spec.get("containers", []))
        self._sandbox_ready = False
        self._conditions: dict[str, tuple[str, str]] = {}
        scheduled = next(
            (
                c
                for c in (pod.get("status") or {}).get("conditions", [])
                if c.get("type") == "PodScheduled"
            ),
            None,
        )
        if scheduled is not None:
            self._conditions["PodScheduled"] = ("True", scheduled.get("lastTransitionTime", ""))
        app = (meta.get("labels") or {}).get("app", "")
        self.containers = [_container(spec_, app) for spec_ in spec.get("containers", [])]

    def cancel(self) -> None:
        for task in self.tasks:
            task.cancel()

    def terminate(self, grace: float | None) -> None:
        """The pod is being deleted: stop its containers, then remove it from the store."""
        self.terminating = True
        if grace is not None:
            self._grace = float(grace)
        self.tasks.append(self.kubelet._spawn(self._finish(), f"kubelet {self.uid} terminating"))

    async def run(self) -> None:
        try:
            self._publish()
            if await self._sleep(SANDBOX_SECONDS):
                return
            self.pod_ip = self.kubelet.allocate_ip(self.node)
            self._sandbox_ready = True
            self._publish()
            async with asyncio.TaskGroup() as group:
                for container in self.containers:
                    group.create_task(self._container_loop(container))
            self._publish()
        except Exception:
            _log.exception("kubelet: pod %s/%s failed", self.namespace, self.name)

    async def _finish(self) -> None:
        for container in self.containers:
            if "running" in container.state:
                self._event(container, "Killing", f"Stopping container {container.name}")
        self._stop.set()
        await asyncio.gather(self.tasks[0], return_exceptions=True)
        pod = self.kubelet.store.find(PODS, self.namespace, self.name)
        if pod is not None and pod["metadata"]["uid"] == self.uid:
            try:
                self.kubelet.store.delete(PODS, self.namespace, self.name)
            except ApiError as error:
                if error.code != 404:
                    raise

    # one container

    async def _container_loop(self, container: _Container) -> None:
        while not self._stop.is_set():
            if not await self._pull(container):
                return
            exit_, finished = await self._run_instance(container)
            policy = self.spec.get("restartPolicy", "Always")
            if self.terminating or policy == "Never" or (policy == "OnFailure" and not exit_.code):
                return
            if not await self._before_restart(container, finished):
                return

    async def _pull(self, container: _Container) -> bool:
        """Make the image present, as the image manager does; False when the pod stops."""
        kubelet, image = self.kubelet, container.spec.get("image", "")
        policy = container.spec.get("imagePullPolicy") or (
            "Always" if container.image.reference == "latest" else "IfNotPresent"
        )
        while True:
            present = kubelet.images.get((self.node, container.image.canonical))
            if present and policy != "Always":
                container.image_id = present
                self._event(
                    container, "Pulled", f'Container image "{image}" already present on machine'
                )
                return True
            if policy == "Never":
                message = f'Container image "{image}" is not present with pull policy of Never'
                self._event(container, "ErrImageNeverPull", message, warning=True)
                self._event(container, "Failed", "Error: ErrImageNeverPull", warning=True)
                self._wait(container, "ErrImageNeverPull", message)
                if await self._sleep(BACKOFF_INITIAL_SECONDS):
                    return False
                continue
            backoff = container.pull_backoff
            wait = backoff.remaining(backoff.last_update, kubelet.world_now())
            if wait > 0:
                message = f'Back-off pulling image "{image}"'
                self._event(container, "BackOff", message)
                self._event(container, "Failed", "Error: ImagePullBackOff", warning=True)
                self._wait(container, "ImagePullBackOff", message)
                if await self._sleep(wait):
                    return False
            self._event(container, "Pulling", f'Pulling image "{image}"')
            result = await kubelet.resolve(container.image)
            if isinstance(result, str):
                if await self._sleep(RESOLVE_FAIL_SECONDS):
                    return False
                self._event(
                    container, "Failed", f'Failed to pull image "{image}": {result}', warning=True
                )
                backoff.next(kubelet.world_now())
                self._event(container, "Failed", "Error: ErrImagePull", warning=True)
                self._wait(container, "ErrImagePull", result)
                if await self._sleep(SYNC_SECONDS):
                    return False
                continue
            took = kubelet.rng.uniform(*PULL_SECONDS)
            if await self._sleep(took):
                return False
            kubelet.images[(self.node, container.image.canonical)] = result.image_id
            container.image_id = result.image_id
            shown = go_duration(took)
            self._event(
                container,
                "Pulled",
                f'Successfully pulled image "{image}" in {shown} ({shown} including waiting). '
                f"Image size: {result.size} bytes.",
            )
            return True

    async def _run_instance(self, container: _Container) -> tuple[_Exit, float]:
        """Create, start and run one instance until it exits; (exit, world finish time)."""
        kubelet = self.kubelet
        container.container_id = "containerd://" + secrets.token_hex(32)
        self._event(container, "Created", f"Created container {container.name}")
        self._event(container, "Started", f"Started container {container.name}")
        started_at = now_rfc3339()
        container.state = {"running": {"startedAt": started_at}}
        container.ready = "readinessProbe" not in container.spec
        container.exited = False
        log = kubelet.logs.open(self.uid, container.name, container.container_id)
        voice = voice_for(
            container.image.repository,
            container.image.tag,
            _container_port(container.spec),
            ((container.spec.get("resources") or {}).get("limits") or {}).get("memory"),
        )
        started = kubelet.world_now()
        startup = voice.startup()
        booted = started + len(startup) * STARTUP_LINE_SECONDS
        container.ends_at = {
            ImageBehaviour.CRASH: booted + CRASH_AFTER_SECONDS,
            ImageBehaviour.OOM: booted + OOM_STEPS * OOM_STEP_SECONDS,
        }.get(container.behaviour)
        self._publish()
        unhealthy = container.behaviour is ImageBehaviour.UNHEALTHY
        if unhealthy:
            kubelet._unhealthy_started(container.service)
        try:
            racers: list[Coroutine[Any, Any, _Exit | None]] = [
                self._app(container, log, voice, startup, started),
                self._stopped(),
            ]
            if "readinessProbe" in container.spec:
                racers.append(self._probe_loop(container, log, voice, "readiness", started))
            if "livenessProbe" in container.spec:
                racers.append(self._probe_loop(container, log, voice, "liveness", started))
            exit_ = await _first(racers)
            if exit_ is None:
                exit_ = await self._shutdown(container, log, voice)
        finally:
            log.close()
            container.ready = False
            if unhealthy:
                kubelet._unhealthy_stopped(container.service)
        container.state = {
            "terminated": {
                "exitCode": exit_.code,
                "reason": exit_.reason,
                "startedAt": started_at,
                "finishedAt": now_rfc3339(),
                "containerID": container.container_id,
            }
        }
        self._publish()
        return exit_, kubelet.world_now()

    async def _before_restart(self, container: _Container, finished: float) -> bool:
        """Wait out the restart back-off (CrashLoopBackOff); False when the pod stops."""
        if await self._sleep(SYNC_SECONDS):
            return False
        container.last_state = {"terminated": container.state["terminated"]}
        backoff = container.restart_backoff
        wait = backoff.remaining(finished, self.kubelet.world_now())
        if wait > 0:
            self._wait(
                container,
                "CrashLoopBackOff",
                f"back-off {go_duration(backoff.duration)} restarting failed "
                f"container={container.name} pod={self.ref}",
            )
            self._event(
                container,
                "BackOff",
                f"Back-off restarting failed container {container.name} in pod {self.ref}",
                warning=True,
            )
            if await self._sleep(wait):
                return False
        backoff.next(finished)
        container.restart_count += 1
        return True

    # what the process does

    async def _app(
        self,
        container: _Container,
        log: ContainerLog,
        voice: AppVoice,
        startup: list[str],
        started: float,
    ) -> _Exit:
        """The process: its timeline is laid out in world time from `started`, so that lag on
        the event loop never reorders it against the probes."""
        rng = self.kubelet.rng
        for index, line in enumerate(startup, 1):
            log.write(line)
            await self._until(started + index * STARTUP_LINE_SECONDS)
        booted = started + len(startup) * STARTUP_LINE_SECONDS
        if container.behaviour is ImageBehaviour.CRASH:
            await self._until(booted + CRASH_AFTER_SECONDS)
            log.write("\n".join(voice.crash()))
            container.exited = True
            return _Exit(1, "Error")
        if container.behaviour is ImageBehaviour.OOM:
            used = voice.limit_mib * 0.35
            step = (voice.limit_mib - used) / OOM_STEPS
            for index in range(1, OOM_STEPS + 1):
                await self._until(booted + index * OOM_STEP_SECONDS)
                used += step * rng.uniform(0.9, 1.1)
                log.write(voice.request())
                log.write(voice.heap(min(int(used), voice.limit_mib)))
            container.exited = True
            return _Exit(137, "OOMKilled")
        while True:
            await self.kubelet.clock.sleep(rng.uniform(*REQUEST_EVERY_SECONDS))
            log.write(voice.request())
            if container.behaviour is ImageBehaviour.UNHEALTHY and rng.random() < 0.5:
                log.write(voice.dependency_error())

    async def _stopped(self) -> None:
        await self._stop.wait()

    async def _shutdown(self, container: _Container, log: ContainerLog, voice: AppVoice) -> _Exit:
        """SIGTERM: a healthy service exits cleanly; an unhealthy one hangs until SIGKILL."""
        container.ready = False
        lines = voice.shutdown()
        if container.behaviour is ImageBehaviour.UNHEALTHY:
            log.write(lines[0])
            log.write("WARN  waiting for 5 in-flight requests (database calls blocked)")
            await self.kubelet.clock.sleep(self._grace)
            return _Exit(137, "Error")
        log.write("\n".join(lines))
        await self.kubelet.clock.sleep(min(GRACEFUL_EXIT_SECONDS, self._grace))
        return _Exit(0, "Completed")

    async def _probe_loop(
        self, container: _Container, log: ContainerLog, voice: AppVoice, kind: str, started: float
    ) -> None:
        """Probe every period; readiness sets `ready`, liveness returns to have it restarted."""
        probe = container.spec[f"{kind}Probe"]
        period = probe.get("periodSeconds", 10)
        failure_threshold = probe.get("failureThreshold", 3)
        success_threshold = probe.get("successThreshold", 1)
        due = started + probe.get("initialDelaySeconds", 0)
        failures = successes = 0
        while True:
            await self._until(due)
            due += period
            failure = await self._probe(container, log, voice, probe, kind)
            if failure is None:
                failures, successes = 0, successes + 1
                dying = (
                    container.ends_at is not None and self.kubelet.world_now() >= container.ends_at
                )
                if (
                    kind == "readiness"
                    and not container.ready
                    and successes >= success_threshold
                    and not dying
                ):
                    container.ready = True
                    self._publish()
            else:
                failures, successes = failures + 1, 0
                self._event(
                    container,
                    "Unhealthy",
                    f"{kind.capitalize()} probe failed: {failure}",
                    warning=True,
                )
                if failures >= failure_threshold:
                    if kind == "liveness":
                        self._event(
                            container,
                            "Killing",
                            f"Container {container.name} failed liveness probe, will be restarted",
                        )
                        return
                    if container.ready:
                        container.ready = False
                        self._publish()

    async def _probe(
        self, container: _Container, log: ContainerLog, voice: AppVoice, probe: Obj, kind: str
    ) -> str | None:
        """One probe: None on success, else the prober's failure message."""
        http = probe.get("httpGet")
        if http is None:
            return None
        path, port = http.get("path", "/"), _resolve_port(container.spec, http.get("port"))
        url = f"{http.get('scheme', 'HTTP').lower()}://{self.pod_ip}:{port}{path}"
        if container.exited:
            # a probe due before the exit but run after it finds no process and writes nothing
            # into the dead container's log
            return f'Get "{url}": dial tcp {self.pod_ip}:{port}: connect: connection refused'
        status = 200
        if container.behaviour is ImageBehaviour.UNHEALTHY:
            status = 503
        elif kind == "readiness" and container.endpoint is Endpoint.HANG:
            await self.kubelet.clock.sleep(probe.get("timeoutSeconds", 1))
            return (
                f'Get "{url}": context deadline exceeded '
                "(Client.Timeout exceeded while awaiting headers)"
            )
        elif kind == "readiness" and container.endpoint in (Endpoint.FAILING, Endpoint.NOT_READY):
            status = 503
        log.write(voice.probe(path, status))
        return f"HTTP probe failed with statuscode: {status}" if status >= 400 else None

    # status, events, waiting

    async def _until(self, world_time: float) -> None:
        """Sleep until a world-time reading (at once if it has passed)."""
        await self.kubelet.clock.sleep(max(world_time - self.kubelet.world_now(), 0.0))

    async def _sleep(self, world_seconds: float) -> bool:
        """Sleep in world time; True if the pod was told to stop meanwhile."""
        try:
            async with asyncio.timeout(self.kubelet.clock.real(world_seconds)):
                await self._stop.wait()
        except TimeoutError:
            return False
        return True

    def _wait(self, container: _Container, reason: str, message: str) -> None:
        container.state = {"waiting": {"reason": reason, "message": message}}
        self._publish()

    def _event(
        self, container: _Container, reason: str, message: str, *, warning: bool = False
    ) -> None:
        pod = self.kubelet.store.find(PODS, self.namespace, self.name)
        if pod is None or pod["metadata"]["uid"] != self.uid:
            return
        record_event(
            self.kubelet.store,
            pod,
            reason,
            message,
            warning=warning,
            host=self.node,
            field_path=f"spec.containers{{{container.name}}}",
        )

    def _condition(self, kind: str, status: str, now: str) -> Obj:
        previous = self._conditions.get(kind)
        if previous is None or previous[0] != status:
            self._conditions[kind] = (status, now)
        condition: Obj = {
            "type": kind,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": self._conditions[kind][1],
        }
        return condition

    def _status(self) -> Obj:
        now = now_rfc3339()
        unready = [c.name for c in self.containers if not c.ready]
        ready = "False" if unready else "True"
        conditions = [
            self._condition("PodReadyToStartContainers", str(self._sandbox_ready), now),
            self._condition("Initialized", "True", now),
            self._condition("Ready", ready, now),
            self._condition("ContainersReady", ready, now),
            self._condition("PodScheduled", "True", now),
        ]
        if unready:
            for condition in conditions[2:4]:
                condition["reason"] = "ContainersNotReady"
                condition["message"] = f"containers with unready status: [{' '.join(unready)}]"
        status: Obj = {
            "phase": self._phase(),
            "conditions": conditions,
            "hostIP": self._host_ip,
            "hostIPs": [{"ip": self._host_ip}],
            "startTime": self._start_time,
            "containerStatuses": [c.status() for c in self.containers],
            "qosClass": self._qos,
        }
        if self.pod_ip:
            status["podIP"], status["podIPs"] = self.pod_ip, [{"ip": self.pod_ip}]
        return status

    def _phase(self) -> str:
        """The kubelet's getPhase for a pod without init containers."""
        waiting = running = 0
        stopped: list[Obj] = []
        for container in self.containers:
            state = container.state
            if "running" in state:
                running += 1
            elif "terminated" in state:
                stopped.append(state["terminated"])
            elif container.last_state:
                stopped.append(container.last_state["terminated"])
            else:
                waiting += 1
        if waiting:
            return "Pending"
        if running:
            return "Running"
        policy = "Never" if self.terminating else self.spec.get("restartPolicy", "Always")
        if policy == "Always":
            return "Running"
        if all(t.get("exitCode") == 0 for t in stopped):
            return "Succeeded"
        return "Failed" if policy == "Never" else "Running"

    def _publish(self) -> None:
        """Write the pod's status; a 409 is re-read and retried, a deleted pod ignored."""
        store, status = self.kubelet.store, self._status()
        for _ in range(5):
            pod = store.find(PODS, self.namespace, self.name)
            if pod is None or pod["metadata"]["uid"] != self.uid:
                return
            pod["status"] = status
            try:
                store.update(PODS, pod, status_only=True)
                return
            except ApiError as error:
                if error.code == 404:
                    return
                if error.code != 409:
                    raise


async def _first(racers: list[Coroutine[Any, Any, T]]) -> T:
    """The result of whichever coroutine finishes first; the others are cancelled."""
    tasks = [asyncio.ensure_future(racer) for racer in racers]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        return next(iter(done)).result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _container(spec: Obj, app: str) -> _Container:
    image = ImageRef.parse(spec.get("image", ""))
    service_seed = seed.service(image.repository.rsplit("/", 1)[-1]) or seed.service(app)
    behaviour = service_seed.behaviour(image.tag) if service_seed else ImageBehaviour.OK
    endpoint = service_seed.endpoint if service_seed else Endpoint.OK
    return _Container(spec, image, behaviour, endpoint, app or image.repository)


def _container_port(spec: Obj) -> int:
    ports = spec.get("ports") or []
    return int(ports[0].get("containerPort", 8080)) if ports else 8080


def _resolve_port(spec: Obj, port: int | str | None) -> int | str:
    if isinstance(port, str) and not port.isdigit():
        for candidate in spec.get("ports") or []:
            if candidate.get("name") == port:
                return int(candidate["containerPort"])
    return port if port is not None else _container_port(spec)


def _qos_class(containers: list[Obj]) -> str:
    """Guaranteed, Burstable or BestEffort, from the containers' requests and limits."""
    any_set, guaranteed = False, True
    for container in containers:
        resources = container.get("resources") or {}
        limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
        any_set = any_set or bool(limits or requests)
        for name in ("cpu", "memory"):
            limit = limits.get(name)
            if limit is None or str(requests.get(name, limit)) != str(limit):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"
