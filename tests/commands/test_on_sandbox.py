"""The command layer's read-side commands against the whole running sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from commands.clients.backup import BackupClient
from commands.clients.kube import Kube
from commands.core.config import Config, load_config
from commands.core.models import FinalResult, Reply, Tone
from commands.core.parser import parse_command
from commands.handlers.backup import run_backup_command
from commands.handlers.health import show_health
from commands.handlers.logs import show_logs
from sandbox.cluster import Sandbox
from sandbox.resources import DEPLOYMENTS, PODS
from tests.polling import eventually

PROBE_TIMEOUT = 1.0


def pods(sandbox: Sandbox, app: str) -> list[dict[str, Any]]:
    return sandbox.store.list(PODS, "holm", lambda p: p["metadata"]["labels"].get("app") == app)


def running(sandbox: Sandbox, app: str, count: int) -> bool:
    states = [
        s.get("state", {})
        for p in pods(sandbox, app)
        for s in p.get("status", {}).get("containerStatuses") or []
    ]
    return len(states) >= count and all("running" in state for state in states)


def oomkilled(sandbox: Sandbox, app: str) -> bool:
    return any(
        (s.get("lastState") or {}).get("terminated", {}).get("reason") == "OOMKilled"
        for p in pods(sandbox, app)
        for s in p.get("status", {}).get("containerStatuses") or []
    )


def backing_off_after_oom(sandbox: Sandbox, app: str) -> bool:
    """A pod of `app` waits in CrashLoopBackOff after being OOMKilled."""
    return any(
        (s.get("state") or {}).get("waiting", {}).get("reason") == "CrashLoopBackOff"
        and (s.get("lastState") or {}).get("terminated", {}).get("reason") == "OOMKilled"
        for p in pods(sandbox, app)
        for s in p.get("status", {}).get("containerStatuses") or []
    )


def available(sandbox: Sandbox, app: str) -> int:
    """The Deployment's available replicas, as its status says."""
    live = sandbox.store.get(DEPLOYMENTS, "holm", app)
    return (live.get("status") or {}).get("availableReplicas", 0)


@pytest.fixture
def config(sandbox: Sandbox) -> Config:
    """The bot config the sandbox writes, with a short probe timeout."""
    loaded = load_config(sandbox.bot_config_path)
    health = loaded.health.model_copy(update={"probe_timeout_seconds": PROBE_TIMEOUT})
    return loaded.model_copy(update={"health": health})


@pytest.fixture
async def kube(config: Config) -> AsyncIterator[Kube]:
    kube = await Kube.from_config(config.kubernetes, config.namespace)
    try:
        yield kube
    finally:
        await kube.close()


async def run(text: str, kube: Kube, config: Config) -> Reply:
    command = parse_command(text)
    if command.action == "logs":
        return (await show_logs(command, kube)).reply  # type: ignore[arg-type]
    return (await show_health(command, kube, config)).reply  # type: ignore[arg-type]


def test_the_sandbox_bot_config_loads(sandbox: Sandbox, config: Config) -> None:
    assert config.namespace == "holm"
    assert config.registry.host == "10.110.67.87:5000"
    assert config.health.aggregator_url == sandbox.endpoints.health_aggregator
    assert config.protected_services == ["postgres"]


@pytest.mark.parametrize("aggregator", [True, False])
async def test_overview_names_a_hanging_service_as_the_aggregator_or_the_bot_saw_it(
    sandbox: Sandbox, config: Config, kube: Kube, aggregator: bool
) -> None:
    # the aggregator probes with 0.8 of the bot's timeout, in the test's event loop: 2 s leaves
    # it room to answer on a loaded machine
    changes: dict[str, Any] = {"probe_timeout_seconds": 2.0}
    if not aggregator:
        changes["aggregator_url"] = None
    config = config.model_copy(update={"health": config.health.model_copy(update=changes)})
    await eventually(lambda: running(sandbox, "test-dashboard", 1) and running(sandbox, "nova", 2))
    reply = await run("/health", kube, config)
    failed = "health check failed: dependency check returned an error"
    if aggregator:  # the aggregator's words
        expected = [f"registry-ui: unhealthy ({failed})", "test-dashboard: timeout"]
    else:  # the bot probed each service itself
        expected = [
            f"registry-ui: /health 503: {failed}",
            "test-dashboard: /health no answer within 2s",
        ]
    assert [line for line in reply.lines if line in expected] == expected, reply.text
    assert reply.tone == Tone.WARNING


async def test_health_of_a_service_with_an_oomkilled_pod(
    sandbox: Sandbox, config: Config, kube: Kube
) -> None:
    # scribe:v0.9 leaks memory until it is OOMKilled, again and again; the nodes' kubelet stops
    # while the pod waits out its restart back-off, so the pod stays down
    await eventually(lambda: backing_off_after_oom(sandbox, "scribe"))
    assert sandbox.kubelet is not None
    await sandbox.kubelet.stop()
    await eventually(lambda: not available(sandbox, "scribe"))
    reply = await run("health scribe", kube, config)
    assert reply.title == "scribe: down, 0/1 available"
    assert reply.tone == Tone.ERROR
    assert (
        "OOMKilled: the container ran out of memory (limit 128Mi); "
        "increase memory limits (runbook 2.2)"
    ) in reply.lines
    assert reply.table is not None
    assert any(row[4].startswith("OOMKilled (exit 137, ") for row in reply.table.rows)
    assert "deployment" in {f.name for f in reply.fields}


async def test_logs_previous_after_a_crash(sandbox: Sandbox, config: Config, kube: Kube) -> None:
    await eventually(lambda: oomkilled(sandbox, "scribe"))
    reply = await run("logs scribe --previous", kube, config)
    assert reply.title.startswith("scribe logs: ")
    assert reply.title.endswith(" from previous (crashed) containers")
    assert reply.tone == Tone.INFO
    assert len(reply.lines) > 1


async def test_logs_of_every_pod_of_a_service(sandbox: Sandbox, config: Config, kube: Kube) -> None:
    await eventually(lambda: running(sandbox, "nova", 2))
    names = sorted(p["metadata"]["name"] for p in pods(sandbox, "nova"))
    reply = await run("!logs nova --tail 5", kube, config)
    assert reply.title.startswith("nova logs: ")
    assert reply.title.endswith(f"from {len(names)} pods")
    prefixes = {line.split(" ", 1)[0] for line in reply.lines}
    assert prefixes <= {f"[{name}]" for name in names}
    assert len(prefixes) == len(names)


async def test_logs_of_a_service_with_a_sidecar(
    sandbox: Sandbox, config: Config, kube: Kube
) -> None:
    await eventually(lambda: running(sandbox, "gateway", 3))
    reply = await run("logs gateway", kube, config)
    assert reply.title == "These pods have 2 containers; pick one with --container"
    assert reply.lines == ["containers: gateway, envoy"]
    reply = await run("logs gateway --container envoy --tail 3", kube, config)
    assert reply.title.startswith("gateway logs: ")
    assert reply.tone == Tone.INFO


async def test_backups_created_listed_and_restored(sandbox: Sandbox, config: Config) -> None:
    async with BackupClient(config.backup) as client:

        async def final_of(text: str) -> FinalResult:
            outcome = await run_backup_command(parse_command(text), client)  # type: ignore[arg-type]
            assert outcome.progress is not None, outcome.reply.text
            events = [event async for event in outcome.progress]
            assert isinstance(events[-1], FinalResult)
            return events[-1]

        created = await final_of("backup create before-upgrade")
        assert created.ok, created.message
        listing = (await run_backup_command(parse_command("backup list"), client)).reply
        assert listing.table is not None
        row = next(r for r in listing.table.rows if r[0] == created.operation_id)
        assert row[1:3] == ["before-upgrade", "completed"]
        restored = await final_of(f"backup restore {created.operation_id}")
        assert restored.ok, restored.message
    assert sandbox.backup.list_restores()[0].backup_id == created.operation_id
