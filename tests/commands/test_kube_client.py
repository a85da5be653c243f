"""The Kubernetes client against an API server that never answers: each call times out on its
own, and the calls that wait tie up only the client's own threads."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from commands.clients.kube import Kube, KubeTimeout
from commands.core.config import KubernetesConfig
from sandbox.serving import write_kubeconfig
from tests.commands.servers import Serve, fault_app


async def test_a_hung_api_server_times_out_each_call_and_starves_nothing_else(
    serve: Serve, tmp_path: Path
) -> None:
    url = await serve(fault_app("hang"))
    settings = KubernetesConfig(
        kubeconfig=write_kubeconfig(tmp_path / "kc", url, "holm"),
        request_timeout_seconds=0.5,
        max_concurrent_calls=2,
    )
    kube = await Kube.from_config(settings, "holm")
    # a default executor as small as the client's pool: shared, it would be full
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(2))
    try:
        hung = [asyncio.ensure_future(kube.deployment_names()) for _ in range(4)]
        await asyncio.sleep(0)  # one loop turn: every call is handed to a thread (or queued)
        # The loop's default executor (state file, log rendering ...) still serves work
        # while every Kubernetes thread waits on the hung server.
        assert await asyncio.to_thread(lambda: "served") == "served"
        assert not any(call.done() for call in hung)
        for call in hung:
            with pytest.raises(KubeTimeout, match=r"did not answer within 0\.5s"):
                await call
    finally:
        await kube.close()
