"""A service with many pods and large logs, for the benchmarks of `/logs`' memory.

`BigLogs` scales `SERVICE` to `PODS` pods through the Kubernetes API, and `fill()` writes
`LINES` long lines (about `LOG_BYTES`) into each pod's current container log, as the pods keep
logging between reads: `/logs SERVICE --tail LINES` then reads every byte of them.
"""

from __future__ import annotations

import asyncio
import random
import time
from types import TracebackType

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from sandbox.cluster import Sandbox
from sandbox.seed import NAMESPACE

SERVICE = "nova"
PODS = 10
LOG_BYTES = 1 << 20  # per pod, as `kubectl logs` prints it (no timestamps)
LINES = 2000  # what the sandbox's kubelet keeps of each container
PODS_TIMEOUT = 120.0  # seconds for the scaled deployment's pods to run
READ = f"/logs {SERVICE} --tail {LINES}"
CONFLICT_ATTEMPTS = 5


def _big_lines(rng: random.Random) -> str:
    """`LINES` request lines with bodies, `LOG_BYTES` or a little more with newlines."""
    width = -(-LOG_BYTES // LINES) - 1
    lines = []
    for _ in range(LINES):
        head = f"INFO  POST /api/v1/events 201 {rng.randint(2, 90)}ms body="
        lines.append(head + rng.randbytes(width).hex()[: width - len(head)])
    return "\n".join(lines)


class BigLogs:
    """`SERVICE` scaled out to `PODS` running pods, their logs filled on demand."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.pods: list[client.V1Pod] = []
        self._rng = random.Random(7)
        self._api = config.new_client_from_config(str(sandbox.kubeconfig))
        self._core = client.CoreV1Api(self._api)

    async def __aenter__(self) -> BigLogs:
        apps = client.AppsV1Api(self._api)
        scale = {"spec": {"replicas": PODS}}
        for attempt in range(CONFLICT_ATTEMPTS):  # the controller may be writing it too
            try:
                await asyncio.to_thread(
                    apps.patch_namespaced_deployment_scale, SERVICE, NAMESPACE, scale
                )
                break
            except ApiException as error:
                if error.status != 409 or attempt == CONFLICT_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.1)
        self.pods = await self._running_pods()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self._api.close)

    async def _running_pods(self) -> list[client.V1Pod]:
        """The service's pods once exactly `PODS` run (none terminating), asked of the API."""
        deadline = time.monotonic() + PODS_TIMEOUT
        while True:
            listed = await asyncio.to_thread(
                self._core.list_namespaced_pod, NAMESPACE, label_selector=f"app={SERVICE}"
            )
            running = [
                pod
                for pod in listed.items
                if pod.metadata.deletion_timestamp is None
                and pod.status.container_statuses
                and all(status.state.running for status in pod.status.container_statuses)
            ]
            if len(running) == PODS == len(listed.items):
                return running
            if time.monotonic() > deadline:
                raise SystemExit(f"{SERVICE}: {len(running)} of {PODS} pods running")
            await asyncio.sleep(0.2)

    async def fill(self) -> list[int]:
        """Write `LINES` long lines into each pod's current log; each log's size in bytes,
        as `kubectl logs POD` prints it."""
        kubelet = self.sandbox.kubelet
        assert kubelet is not None
        for pod in self.pods:
            container = pod.spec.containers[0].name
            log = kubelet.logs.current(NAMESPACE, pod.metadata.name, container)
            if log is None:
                raise SystemExit(f"pod {pod.metadata.name} has no log yet")
            log.write(_big_lines(self._rng))
        texts = await asyncio.gather(
            *(
                asyncio.to_thread(self._core.read_namespaced_pod_log, pod.metadata.name, NAMESPACE)
                for pod in self.pods
            )
        )
        return [len(text.encode()) for text in texts]
