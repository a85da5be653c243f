"""`/health` over many services with some hanging: how long the overview takes.

The target (README's benchmark table): 60 services with 6 hanging within 1.2 x one probe
timeout. The cluster (the sandbox's Kubernetes API over a staged store, every service's
`/health` and the aggregator) runs in a child process, as it runs on other machines in
production. The bot runs `/health` here through its command layer and the official client, once
probing every service itself and once asking the aggregator.

    python3 -m bench.health_overview [--services 60] [--hanging 6] [--timeout 1.0] [--runs 10]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

from commands.core.config import Config, HealthConfig, KubernetesConfig
from commands.core.models import Invocation, User
from commands.flow.layer import CommandLayer
from sandbox.apiserver import ApiServer
from sandbox.health import HealthBoard, build_health_app, service_url_template
from sandbox.podlogs import PodLogs
from sandbox.serving import serve_app, write_kubeconfig
from sandbox.staging import NAMESPACE, Stage

TARGET = 1.2  # x one probe timeout
ASKER = User(platform="console", id="operator")


def _serve_cluster(services: int, hanging: int, urls: Connection) -> None:
    asyncio.run(_cluster(services, hanging, urls))


async def _cluster(services: int, hanging: int, urls: Connection) -> None:
    """Stage one-pod services, the first `hanging` of them hanging, and serve until killed."""
    store = Stage.new_store()
    stage = Stage(store=store, logs=PodLogs(store), board=HealthBoard())
    stage.many_services(services, hanging)
    _, api_url = await serve_app(ApiServer(store, stage.logs).app)
    _, health_url = await serve_app(build_health_app(stage.board))
    urls.send((api_url, health_url))
    await asyncio.Event().wait()


async def _overview_seconds(config: Config, runs: int, hanging: int) -> tuple[float, list[float]]:
    """(first run, the runs after it) in seconds, each checked to name every hanging service."""
    layer = await CommandLayer.open(config)
    try:
        seconds = []
        for _ in range(runs + 1):
            started = time.perf_counter()
            outcome = await layer.handle(Invocation(user=ASKER, channel="bench", text="/health"))
            seconds.append(time.perf_counter() - started)
            named = sum(
                line.startswith(f"svc-{n:02d}:")
                for line in outcome.reply.lines
                for n in range(hanging)
            )
            if named != hanging:
                raise SystemExit(f"the overview named {named} of {hanging} hanging services")
        return seconds[0], seconds[1:]
    finally:
        await layer.close()


def _row(path: str, first: float, runs: list[float], timeout: float) -> str:
    p50 = statistics.median(runs)
    p95 = statistics.quantiles(runs, n=20, method="inclusive")[-1] if len(runs) > 1 else runs[0]
    worst = max(runs)
    verdict = "ok" if worst <= TARGET * timeout else "MISSED"
    return (
        f"| {path} | {first:.2f} s | {p50:.2f} s | {p95:.2f} s | {worst:.2f} s "
        f"| {worst / timeout:.2f} x | <= {TARGET} x: {verdict} |"
    )


async def _bench(args: argparse.Namespace, api_url: str, health_url: str, state: Path) -> None:
    kubeconfig = write_kubeconfig(state / "kubeconfig", api_url, NAMESPACE)
    direct = HealthConfig(
        service_url_template=service_url_template(health_url),
        probe_timeout_seconds=args.timeout,
    )
    config = Config(
        namespace=NAMESPACE,
        kubernetes=KubernetesConfig(kubeconfig=kubeconfig),
        health=direct,
        state_dir=state / "bot",
    )
    through_aggregator = config.model_copy(
        update={"health": direct.model_copy(update={"aggregator_url": health_url})}
    )
    print(
        f"/health overview: {args.services} services, {args.hanging} hanging, "
        f"probe timeout {args.timeout:.2f} s, {args.runs} runs after a first one\n"
    )
    print("| probes | first | p50 | p95 | max | max / timeout | target |")
    print("|---|---|---|---|---|---|---|")
    for path, chosen in (("the bot's own", config), ("the aggregator's", through_aggregator)):
        first, runs = await _overview_seconds(chosen, args.runs, args.hanging)
        print(_row(path, first, runs, args.timeout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=60)
    parser.add_argument("--hanging", type=int, default=6)
    parser.add_argument("--timeout", type=float, default=1.0, help="probe timeout, seconds")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    receiver, sender = multiprocessing.Pipe(duplex=False)
    cluster = multiprocessing.get_context("spawn").Process(
        target=_serve_cluster, args=(args.services, args.hanging, sender), daemon=True
    )
    cluster.start()
    try:
        api_url, health_url = receiver.recv()
        with tempfile.TemporaryDirectory(prefix="holmbot-bench-") as state:
            asyncio.run(_bench(args, api_url, health_url, Path(state)))
    finally:
        cluster.terminate()
        cluster.join()


if __name__ == "__main__":
    main()
