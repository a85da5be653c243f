"""`/logs` against the sandbox API server: what the user sees for every shape of pod."""

from __future__ import annotations

import re
from pathlib import Path

from bot.render.fitting import Budget, fit
from commands.clients.kube import Kube
from commands.core.config import KubernetesConfig
from commands.core.models import Reply, Tone
from commands.core.parser import parse_command
from commands.handlers.logs import SHOWN_LINES, show_logs
from sandbox.serving import write_kubeconfig
from tests.commands.world import Container, World

CHAT = Budget(max_lines=40, max_chars=3500)


async def logs(world: World, text: str, max_total_bytes: int = 4 << 20) -> Reply:
    command = parse_command(text)
    return (await show_logs(command, world.kube, max_total_bytes)).reply  # type: ignore[arg-type]


def notes(reply: Reply) -> list[str]:
    return [field.value for field in reply.fields if field.name == "note"]


def bodies(reply: Reply) -> list[str]:
    """The log lines of a reply without their `HH:MM:SS ` time."""
    return [line.split(" ", 1)[1] for line in reply.lines if line[:2].isdigit()]


async def test_one_pod_lines_without_prefix(world: World) -> None:
    world.deployment("nova")
    world.pod("nova", "abcde", Container("nova", logs=["starting", "listening on :8080", "GET /"]))
    reply = await logs(world, "/logs nova")
    assert reply.title == "nova logs: 3 lines from 1 pod"
    assert reply.tone == Tone.INFO
    assert bodies(reply) == ["starting", "listening on :8080", "GET /"]
    assert fit(reply, CHAT).file is None  # it all shows: no file to send


async def test_several_pods_merged_in_time_order_with_pod_prefix(world: World) -> None:
    world.deployment("nova", replicas=2)
    a = world.pod("nova", "aaaaa")["metadata"]["name"]
    b = world.pod("nova", "bbbbb")["metadata"]["name"]
    for index in range(3):
        world.say(a, f"a{index}")
        world.say(b, f"b{index}")
    reply = await logs(world, "!logs nova")
    assert reply.title == "nova logs: 6 lines from 2 pods"
    assert [line.split(" ")[0] for line in reply.lines] == [f"[{a}]", f"[{b}]"] * 3
    assert [line.rsplit(" ", 1)[1] for line in reply.lines] == ["a0", "b0", "a1", "b1", "a2", "b2"]


async def test_tail_keeps_the_newest_lines(world: World) -> None:
    world.deployment("nova")
    world.pod("nova", "abcde", Container("nova", logs=[f"line {n}" for n in range(30)]))
    reply = await logs(world, "logs nova --tail 5")
    assert bodies(reply) == [f"line {n}" for n in range(25, 30)]


async def test_grep_is_case_insensitive_and_tail_counts_matches(world: World) -> None:
    lines = [f"INFO request {n}" if n % 3 else f"ERROR timeout {n}" for n in range(30)]
    world.deployment("nova")
    world.pod("nova", "abcde", Container("nova", logs=lines))
    reply = await logs(world, "logs nova --grep error --tail 2")
    assert reply.title == "nova logs: 2 lines from 1 pod matching 'error'"
    assert bodies(reply) == ["ERROR timeout 24", "ERROR timeout 27"]


async def test_previous_shows_the_crashed_container(world: World) -> None:
    world.deployment("nova", replicas=2, tag="v2-broken")
    crashed = Container(
        "nova",
        state="CrashLoopBackOff",
        restarts=4,
        last_reason="Error",
        previous_logs=["starting", "panic: missing DATABASE_URL"],
    )
    world.pod("nova", "crash", crashed)
    healthy = world.pod("nova", "fine1", Container("nova", logs=["ok"]))["metadata"]["name"]
    reply = await logs(world, "logs nova --previous")
    assert reply.title == "nova logs: 2 lines from previous (crashed) containers"
    assert notes(reply) == [f"no previous (crashed) container for pod {healthy}"]
    assert [line.split(" ", 2)[2] for line in reply.lines] == [
        "starting",
        "panic: missing DATABASE_URL",
    ]


async def test_previous_without_any_crash(world: World) -> None:
    world.deployment("nova")
    pod = world.pod("nova", "abcde", Container("nova", logs=["ok"]))["metadata"]["name"]
    reply = await logs(world, "logs nova --previous")
    assert reply.title == "No logs for nova"
    assert reply.tone == Tone.WARNING
    assert reply.lines == [f"no previous (crashed) container for pod {pod}"]


async def test_multi_container_pod_asks_for_a_container(world: World) -> None:
    world.deployment("gateway", containers=("gateway", "envoy"))
    world.pod(
        "gateway",
        "abcde",
        Container("gateway", logs=["gateway up"]),
        Container("envoy", logs=["envoy up"]),
    )
    reply = await logs(world, "logs gateway")
    assert reply.title == "These pods have 2 containers; pick one with --container"
    assert reply.lines == ["containers: gateway, envoy"]
    assert bodies(await logs(world, "logs gateway --container envoy")) == ["envoy up"]
    reply = await logs(world, "logs gateway --container sidecar")
    assert reply.title == "No container sidecar in these pods"
    assert reply.lines == ["containers: gateway, envoy"]


async def test_every_line_comes_back_and_the_whole_log_as_a_file(world: World) -> None:
    world.deployment("nova")
    lines = [f"request {n} served in {n % 17} ms" for n in range(SHOWN_LINES)]
    world.pod("nova", "abcde", Container("nova", logs=lines))
    reply = await logs(world, f"logs nova --tail {SHOWN_LINES}")
    assert bodies(reply) == lines and reply.omitted_lines == 0
    assert reply.attachment is not None
    assert reply.attachment.filename == "nova-logs.txt"
    content = reply.attachment.content.decode().splitlines()
    assert [line.split(" ", 1)[1] for line in content] == lines
    assert content[0].endswith("Z request 0 served in 0 ms")  # full RFC 3339 timestamps
    fitted = fit(reply, CHAT)  # what a chat renderer does with it
    assert fitted.file == reply.attachment
    shown = [line.split(" ", 1)[1] for line in fitted.lines]
    assert 0 < len(shown) <= 40 and shown == lines[-len(shown) :]
    assert fitted.cut == SHOWN_LINES - len(shown)


async def test_a_log_longer_than_the_reply_shows_its_newest_lines_and_is_sent_whole(
    world: World,
) -> None:
    world.deployment("nova")
    lines = [f"request {n} served" for n in range(SHOWN_LINES + 50)]
    world.pod("nova", "abcde", Container("nova", logs=lines))
    reply = await logs(world, f"logs nova --tail {len(lines)}")
    assert bodies(reply) == lines[-SHOWN_LINES:] and reply.omitted_lines == 50
    assert reply.attachment is not None and reply.attachment.line_count == len(lines)
    # a renderer with room for every line the reply holds still sends the file
    fitted = fit(reply, Budget(max_lines=10_000, max_chars=1_000_000))
    assert fitted.file == reply.attachment and fitted.cut == 50


def busy_log(count: int, last: str) -> list[str]:
    """`count` lines of about 1 KiB, the newest being `last`."""
    return [*(f"INFO request {n} " + "x" * 1000 for n in range(count - 1)), last]


async def test_a_busy_pods_newest_lines_are_kept_when_its_log_is_over_the_limit(
    world: World,
) -> None:
    world.deployment("nova")
    pod = world.pod("nova", "abcde", Container("nova", logs=busy_log(1500, "ERROR newest")))
    name = pod["metadata"]["name"]
    # the API keeps the first limitBytes of what was asked for: the oldest lines
    assert len(await world.kube.read_pod_log(name, limit_bytes=100)) == 100
    grep = await logs(world, "logs nova --grep error")
    tail = await logs(world, "logs nova --tail 1500")
    assert bodies(grep) == ["ERROR newest"]
    assert tail.attachment is not None
    assert tail.attachment.content.decode().splitlines()[-1].endswith("Z ERROR newest")
    for reply in (grep, tail):
        (note,) = notes(reply)
        assert re.fullmatch(rf"pod {name}: only its newest \d+ lines fit in 1 MiB", note), note


async def test_the_total_read_is_capped_across_pods_keeping_each_pods_newest_lines(
    world: World,
) -> None:
    world.deployment("nova", replicas=10)
    for suffix in "abcdefghjk":
        world.pod("nova", suffix * 5, Container("nova", logs=busy_log(1000, f"{suffix} last")))
    reply = await logs(world, "logs nova --tail 1000", max_total_bytes=1 << 20)
    assert reply.attachment is not None
    as_read = [line.split("] ", 1)[1] for line in reply.attachment.content.decode().splitlines()]
    assert sum(len(line.encode()) + 1 for line in as_read) <= 1 << 20  # what the API sent
    last = {line.rsplit(" ", 2)[-2] for line in as_read if line.endswith(" last")}
    assert last == set("abcdefghjk")  # every pod's newest line is in the file
    assert len(notes(reply)) == 10
    assert all(re.search(r"only its newest \d+ lines fit in 102 KiB$", n) for n in notes(reply))


async def test_unknown_service_suggests_close_names(world: World) -> None:
    world.deployment("nova")
    reply = await logs(world, "logs novaa")
    assert reply.title == "No pods with app=novaa in namespace holm"
    assert reply.lines == ["did you mean nova?"]


async def test_service_without_pods(world: World) -> None:
    world.deployment("nova", replicas=0)
    reply = await logs(world, "logs nova")
    assert reply.title == "nova has no pods (scaled to 0?)"


async def test_kubernetes_unreachable(refused_url: str, tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kc", refused_url, "holm")
    kube = await Kube.from_config(KubernetesConfig(kubeconfig=kubeconfig), "holm")
    try:
        reply = (await show_logs(parse_command("logs nova"), kube)).reply  # type: ignore[arg-type]
    finally:
        await kube.close()
    assert reply.title == "Cannot read nova logs"
    assert reply.tone == Tone.ERROR
    assert reply.lines == [f"Kubernetes API at {refused_url} is unreachable (connection refused)"]


async def test_one_huge_line_is_previewed_cut_short(world: World) -> None:
    world.deployment("nova")
    world.pod("nova", "abcde", Container("nova", logs=["x" * 5000]))
    reply = await logs(world, "logs nova")
    assert reply.attachment is not None
    assert b"x" * 5000 in reply.attachment.content
    fitted = fit(reply, CHAT)
    assert fitted.lines[-1].endswith("x…") and len(fitted.lines[-1]) == CHAT.max_chars
    assert fitted.file == reply.attachment
