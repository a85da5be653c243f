"""`/health` against the sandbox API server and the sandbox's service health endpoints."""

from __future__ import annotations

from pathlib import Path

from commands.clients.kube import Kube
from commands.core.config import Config
from commands.core.models import Reply, Tone
from commands.core.parser import parse_command
from commands.handlers.health import show_health
from sandbox.serving import write_kubeconfig
from tests.commands.world import Container, World


async def health(world: World, text: str, config: Config | None = None) -> Reply:
    command = parse_command(text)
    return (await show_health(command, world.kube, config or world.config)).reply  # type: ignore[arg-type]


def field(reply: Reply, name: str) -> str:
    return next(f.value for f in reply.fields if f.name == name)


def with_aggregator(world: World) -> Config:
    health = world.config.health.model_copy(update={"aggregator_url": world.health_url})
    return world.config.model_copy(update={"health": health})


async def test_healthy_service(world: World) -> None:
    world.deployment("nova", replicas=2)
    world.pod("nova", "aaaaa")
    world.pod("nova", "bbbbb")
    reply = await health(world, "/health nova")
    assert reply.title == "nova: healthy, 2/2 available"
    assert reply.tone == Tone.SUCCESS
    assert field(reply, "deployment").startswith("2/2 available, 2 up to date; ")
    assert field(reply, "/health").startswith("200 (")
    assert field(reply, "/ready").startswith("200 (")
    assert reply.table is not None
    assert [row[1:4] for row in reply.table.rows] == [["Running", "1/1", "0"]] * 2


async def test_oomkilled_pod_gets_the_runbook_advice(world: World) -> None:
    world.deployment("scribe", memory="128Mi")
    oom = Container("scribe", restarts=3, last_reason="OOMKilled", last_exit=137)
    pod = world.pod("scribe", "abcde", oom)
    world.warning(pod, "BackOff", "Back-off restarting failed container scribe", count=3)
    reply = await health(world, "health scribe")
    assert reply.tone == Tone.WARNING
    assert reply.title == "scribe: degraded, 1/1 available"
    assert reply.table is not None
    (row,) = reply.table.rows
    assert row[0] == pod["metadata"]["name"]
    assert row[3] == "3"
    assert row[4].startswith("OOMKilled (exit 137, ")
    assert (
        "OOMKilled: the container ran out of memory (limit 128Mi); "
        "increase memory limits (runbook 2.2)"
    ) in reply.lines
    assert "recent warning events:" in reply.lines
    assert any(
        line.endswith(
            f"BackOff pod/{pod['metadata']['name']}: Back-off restarting failed "
            "container scribe (x3)"
        )
        for line in reply.lines
    )


async def test_crash_loop_and_image_pull_advice(world: World) -> None:
    world.deployment("nova", replicas=2, available=0, tag="v2-broken")
    world.pod(
        "nova",
        "crash",
        Container("nova", state="CrashLoopBackOff", restarts=5, last_reason="Error"),
    )
    world.pod("nova", "pullx", Container("nova", state="ImagePullBackOff"))
    world.board.set("nova", "failing")
    reply = await health(world, "health nova")
    assert reply.tone == Tone.ERROR
    assert reply.title == "nova: down, 0/2 available"
    assert (
        "CrashLoopBackOff: the container keeps exiting; check /logs nova --previous (runbook 2.2)"
        in reply.lines
    )
    assert (
        "ImagePullBackOff: check the tag exists in the registry (runbook 2.3): "
        "10.110.67.87:5000/nova:v2-broken"
    ) in reply.lines
    assert field(reply, "/health") == "503: health check failed: dependency check returned an error"
    assert reply.table is not None
    assert sorted(row[1] for row in reply.table.rows) == ["CrashLoopBackOff", "ImagePullBackOff"]


async def test_hanging_service_costs_one_probe_timeout(world: World) -> None:
    world.deployment("test-dashboard")
    world.pod("test-dashboard", "abcde")
    world.board.set("test-dashboard", "hang")
    reply = await health(world, "health test-dashboard")
    assert field(reply, "/health") == "no answer within 0.5s"
    assert field(reply, "/ready") == "no answer within 0.5s"
    assert reply.tone == Tone.WARNING
    assert world.board.most_hanging_at_once == 2  # /health and /ready were asked at once


async def test_service_without_http_endpoint_is_not_probed(world: World) -> None:
    world.deployment("postgres", http=False, port=5432)
    world.pod("postgres", "abcde")
    reply = await health(world, "health postgres")
    assert field(reply, "probes") == "no HTTP health endpoint declared"
    assert reply.tone == Tone.SUCCESS


async def test_unknown_service_suggests_close_names(world: World) -> None:
    world.deployment("gateway")
    reply = await health(world, "health gatway")
    assert reply.tone == Tone.ERROR
    assert reply.title == "No deployment called gatway in namespace holm"
    assert reply.lines == ["did you mean gateway?"]


def busy_cluster(world: World) -> None:
    for n in range(1, 4):
        world.node(f"rpi{n}")
    world.node("rpi4", ready=False)
    world.deployment("nova", replicas=2)
    world.pod("nova", "aaaaa")
    world.pod("nova", "bbbbb")
    world.deployment("scribe", available=0)
    world.pod(
        "scribe",
        "abcde",
        Container(
            "scribe", state="CrashLoopBackOff", restarts=7, last_reason="OOMKilled", last_exit=137
        ),
    )
    world.deployment("registry-ui")
    world.pod("registry-ui", "abcde", Container("registry-ui", ready=False))
    world.board.set("registry-ui", "failing", reason="disk full")


async def test_overview_with_the_aggregator(world: World) -> None:
    busy_cluster(world)
    reply = await health(world, "health", with_aggregator(world))
    assert reply.tone == Tone.WARNING
    assert field(reply, "nodes") == "3/4 ready"
    assert field(reply, "deployments") == "2/3 fully available"
    assert field(reply, "pods") == "3/4 running"
    assert field(reply, "health aggregator") == "degraded (2/3 healthy)"
    assert "node rpi4 not ready: KubeletNotReady" in reply.lines
    assert "scribe: 0/1 available" in reply.lines
    scribe_pod = "scribe-7d9f8c6b5-abcde"
    assert f"{scribe_pod}: CrashLoopBackOff (last terminated: OOMKilled, 7 restarts)" in reply.lines
    assert "registry-ui-7d9f8c6b5-abcde: not ready" in reply.lines
    assert f"restart hot spots: {scribe_pod} 7 (OOMKilled)" in reply.lines
    assert "registry-ui: unhealthy (disk full)" in reply.lines
    assert reply.title == f"holm: {len(reply.lines)} problems"


async def test_overview_probes_services_itself_without_an_aggregator(world: World) -> None:
    busy_cluster(world)
    reply = await health(world, "health")
    assert field(reply, "/health probes") == "2/3 healthy"
    assert "registry-ui: /health 503: disk full" in reply.lines


async def test_overview_of_a_healthy_cluster(world: World) -> None:
    world.node("rpi1")
    world.deployment("nova")
    world.pod("nova", "abcde")
    reply = await health(world, "health", with_aggregator(world))
    assert reply.title == "holm: all healthy"
    assert reply.tone == Tone.SUCCESS
    assert reply.lines == []


async def overview_of_many(world: World, config: Config, services: int, hanging: int) -> None:
    """The overview names each hanging service, having asked them all at once (so they cost
    one timeout, not one each)."""
    world.many_services(services, hanging)
    reply = await health(world, "health", config)
    assert sum("svc-" in line for line in reply.lines) == hanging, reply.lines
    assert world.board.most_hanging_at_once == hanging


async def test_overview_with_hanging_services_costs_one_timeout(world: World) -> None:
    await overview_of_many(world, world.config, services=30, hanging=6)


async def test_overview_with_hanging_services_through_the_aggregator(world: World) -> None:
    # The aggregator here shares the test's event loop with the API server and the bot, so
    # it gets a timeout of a second, not the half second the direct probes get.
    config = with_aggregator(world)
    health = config.health.model_copy(update={"probe_timeout_seconds": 1.0})
    config = config.model_copy(update={"health": health})
    await overview_of_many(world, config, services=30, hanging=6)


async def test_kubernetes_unreachable(world: World, refused_url: str, tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kc", refused_url, "holm")
    kube = await Kube.from_config(
        world.config.kubernetes.model_copy(update={"kubeconfig": kubeconfig}), "holm"
    )
    try:
        for text, whose in (("health", "the cluster's"), ("health nova", "nova's")):
            reply = (await show_health(parse_command(text), kube, world.config)).reply  # type: ignore[arg-type]
            assert reply.tone == Tone.ERROR
            assert reply.title == f"Cannot read {whose} health"
            assert f"Kubernetes API at {refused_url} is unreachable" in reply.text
    finally:
        await kube.close()


async def test_a_service_scaled_to_zero_is_not_probed_and_says_so(world: World) -> None:
    world.deployment("nova", replicas=0)
    world.board.set("nova", "hang")  # nothing would answer: no pod is left to serve it
    reply = await health(world, "health nova")
    assert reply.title == "nova: scaled to 0, 0/0 available"
    assert reply.tone == Tone.INFO
    assert field(reply, "probes") == "not probed: scaled to 0"
    assert world.board.most_hanging_at_once == 0
