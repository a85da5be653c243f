"""Faults at the edges, typed into the console: each gives a clear reply and changes nothing.

The bot always talks HTTP. Faults come from the outside: a port nothing listens on, a server
answering 500, or a second API server over the sandbox's own store whose middleware plays a
concurrent writer (a 409 on the bot's conditional write) or fails writes with a 500.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from commands.core.config import Config
from commands.flow.layer import CommandLayer
from sandbox.apiserver import ApiServer
from sandbox.cluster import Sandbox
from sandbox.resources import DEPLOYMENTS
from sandbox.serving import write_kubeconfig
from tests.console.driver import (
    NS,
    Console,
    audit_log,
    current_image,
    deployment,
    desired_state,
    image,
    open_console,
    operation_id,
    rolled_out,
    with_changes,
)
from tests.polling import eventually

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]
NOVA_PATH = f"/apis/apps/v1/namespaces/{NS}/deployments/nova"
GATEWAY_PATH = f"/apis/apps/v1/namespaces/{NS}/deployments/gateway"


def status_500(message: str) -> web.Response:
    """A Kubernetes `Status` body for a 500, as a real API server sends it."""
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "InternalError",
        "code": 500,
    }
    return web.json_response(body, status=500)


async def api_with(
    sandbox: Sandbox,
    serve: Callable[[web.Application], Awaitable[str]],
    middleware: Middleware,
    kubeconfig: Path,
) -> Path:
    """A second sandbox API server, over the same store, with `middleware` in front (it sees
    the API's answers, errors included, as the client gets them)."""
    assert sandbox.kubelet is not None
    server = ApiServer(sandbox.store, sandbox.kubelet.logs)
    server.app.middlewares.insert(0, web.middleware(middleware))
    return write_kubeconfig(kubeconfig, await serve(server.app), NS)


def pointed_at(config: Config, kubeconfig: Path) -> Config:
    return with_changes(config, kubernetes={"kubeconfig": kubeconfig})


async def test_kubernetes_api_unreachable_gives_a_clear_reply(
    sandbox: Sandbox, bot_config: Config, refused_url: str, tmp_path: Path
) -> None:
    before = desired_state(sandbox, "nova")
    config = pointed_at(bot_config, write_kubeconfig(tmp_path / "kubeconfig", refused_url, NS))
    unreachable = f"Kubernetes API at {refused_url} is unreachable (connection refused)"

    async with open_console(config) as console:
        replies = {
            line: await console.run(line)
            for line in (
                "/deploy nova v2",
                "/rollback nova",
                "/history nova",
                "/status nova",
                "/logs nova",
                "/health nova",
                "/health",
            )
        }
        await console.wait()

    assert replies["/deploy nova v2"] == f"✘ deploy nova:v2 failed: {unreachable}"
    assert replies["/rollback nova"] == f"✘ rollback nova failed: {unreachable}"
    assert replies["/history nova"] == f"✘ history of nova failed: {unreachable}"
    assert replies["/status nova"] == f"✘ status of nova failed: {unreachable}"
    assert replies["/logs nova"] == f"✘ Cannot read nova logs\n{unreachable}"
    assert replies["/health nova"] == f"✘ Cannot read nova's health\n{unreachable}"
    overview = replies["/health"].splitlines()
    assert overview[0] == "✘ Cannot read the cluster's health"
    assert f"cannot read deployments: {unreachable}" in overview
    for line, reply in replies.items():
        assert reply.startswith("✘ "), (line, reply)
        assert unreachable in reply, (line, reply)
        assert "Traceback" not in reply and "unexpectedly" not in reply, (line, reply)
    assert not any(m.startswith("[op-") for m in console.out.messages)
    assert desired_state(sandbox, "nova") == before


async def test_kubernetes_api_answering_500_gives_a_clear_reply_and_changes_nothing(
    sandbox: Sandbox, bot_config: Config, serve: Callable[..., Awaitable[str]], tmp_path: Path
) -> None:
    before = desired_state(sandbox, "nova")

    # an API server failing every request
    async def always(request: web.Request) -> web.Response:
        return status_500("etcdserver: request timed out")

    broken = web.Application()
    broken.router.add_route("*", "/{tail:.*}", always)
    url = await serve(broken)
    config = pointed_at(bot_config, write_kubeconfig(tmp_path / "broken", url, NS))
    async with open_console(config) as console:
        deploy = await console.run("/deploy nova v2")
        history = await console.run("/history nova")
    answered = f"Kubernetes API at {url} answered 500 Internal Server Error: etcdserver: request"
    assert deploy == f"✘ deploy nova:v2 failed: {answered} timed out"
    assert history == f"✘ history of nova failed: {answered} timed out"

    # the real API server, failing only writes: the bot reads, decides, and its write fails
    writes: list[str] = []

    async def fail_writes(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method in ("PATCH", "PUT", "POST", "DELETE"):
            writes.append(f"{request.method} {request.path}")
            return status_500("etcdserver: leader changed")
        return await handler(request)

    kubeconfig = await api_with(sandbox, serve, fail_writes, tmp_path / "writes")
    async with open_console(pointed_at(bot_config, kubeconfig)) as console:
        deploy = await console.run("/deploy nova v2")
        rollback = await console.run("/rollback nova")
        status = await console.run("/status nova")
        await console.wait()
    assert writes == [f"PATCH {NOVA_PATH}", f"PATCH {NOVA_PATH}"]
    assert re.fullmatch(
        r"✘ deploy nova:v2 failed: Kubernetes API at \S+ answered 500 Internal Server Error: "
        r"etcdserver: leader changed",
        deploy,
    )
    assert rollback.startswith("✘ rollback nova failed: Kubernetes API at ")
    assert "running:" not in status  # the failed change left no operation behind
    assert not any(m.startswith("[op-") for m in console.out.messages)
    assert desired_state(sandbox, "nova") == before


async def test_a_rollout_in_flight_is_picked_up_once_kubernetes_answers_again(
    sandbox: Sandbox, bot_config: Config, serve: Callable[..., Awaitable[str]], tmp_path: Path
) -> None:
    first = Console(await CommandLayer.open(bot_config))
    op = operation_id(await first.run("/deploy gateway v2.2.0"))
    await first.stop_bot()  # in the middle of the rollout

    # after the restart the API server fails its first two reads of the Deployment
    failures = [status_500("etcdserver: request timed out") for _ in range(2)]

    async def flaky(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "GET" and request.path == GATEWAY_PATH and failures:
            return failures.pop()
        return await handler(request)

    kubeconfig = await api_with(sandbox, serve, flaky, tmp_path / "flaky")
    async with open_console(pointed_at(bot_config, kubeconfig)) as second:
        again = f"holmbot restarted; following deploy gateway:v2.2.0 again ({op})"
        await eventually(lambda: again in second.out.messages)
        await second.wait()
    assert failures == []
    waiting = f"! holmbot restarted; cannot follow deploy gateway:v2.2.0 yet ({op})\n"
    told = [i for i, m in enumerate(second.out.messages) if m.startswith(waiting)]
    assert len(told) == 1 and told[0] < second.out.messages.index(again), second.text
    assert second.out.messages[told[0]].endswith("etcdserver: request timed out; trying again")
    assert second.final(op).startswith(f"[{op}] ✔ deploy gateway:v2.2.0 done")
    assert rolled_out(sandbox, "gateway")
    entries = [e for e in await audit_log(bot_config) if e["action"] == "deploy"]
    assert [e["outcome"] for e in entries] == ["ok"]


async def test_a_409_conflict_on_update_is_retried_with_a_fresh_read(
    sandbox: Sandbox, bot_config: Config, serve: Callable[..., Awaitable[str]], tmp_path: Path
) -> None:
    patches: list[int] = []

    async def concurrent_writer(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Before the bot's first PATCH of nova lands, somebody else changes nova."""
        if request.method == "PATCH" and request.path == NOVA_PATH:
            if not patches:
                live = deployment(sandbox, "nova")
                live["metadata"].setdefault("annotations", {})["example.com/touched-by"] = "ops"
                sandbox.store.update(DEPLOYMENTS, live)
            response = await handler(request)
            patches.append(response.status)
            return response
        return await handler(request)

    kubeconfig = await api_with(sandbox, serve, concurrent_writer, tmp_path / "kubeconfig")
    async with open_console(pointed_at(bot_config, kubeconfig)) as console:
        reply = await console.run("/deploy nova v2")
        op = operation_id(reply)
        await console.wait()

    assert patches == [409, 200]
    assert reply.startswith("Deploying nova:v2\n")
    assert console.final(op).startswith(f"[{op}] ✔ deploy nova:v2 done: ")
    assert current_image(sandbox, "nova") == image("nova", "v2")
    assert rolled_out(sandbox, "nova")
    annotations = deployment(sandbox, "nova")["metadata"]["annotations"]
    assert annotations["example.com/touched-by"] == "ops"  # the other writer's change stays
    assert annotations["kubernetes.io/change-cause"] == (
        "holmbot deploy nova:v2 by console:operator via console"
    )


async def test_backup_api_down_gives_a_clear_reply(
    sandbox: Sandbox, bot_config: Config, refused_url: str
) -> None:
    config = with_changes(bot_config, backup={"url": refused_url})
    async with open_console(config) as console:
        listing = await console.run("/backup list")
        create = await console.run("/backup create nightly")
        restore = await console.run("/backup restore backup-20250101-000000")
        await console.wait()

    down = f"backup service at {refused_url} is unreachable: "
    assert listing.startswith(f"✘ Cannot list backups\n{down}"), listing
    assert create.startswith(f"✘ Backup not started\n{down}"), create
    assert restore.startswith("✘ cannot restore backup-20250101-000000: " + down), restore
    for reply in (listing, create, restore):
        assert "Traceback" not in reply
    entries = {e["command"]: e for e in await audit_log(config)}
    for command in ("/backup list", "/backup create nightly"):
        assert entries[command]["outcome"] == "failed", entries[command]
        assert "is unreachable" in entries[command]["error"]
    assert sandbox.backup.list_backups() == []
    assert sandbox.backup.list_restores() == []


async def test_registry_down_refuses_a_deploy_and_changes_nothing(
    sandbox: Sandbox, bot_config: Config, refused_url: str
) -> None:
    before = desired_state(sandbox, "nova")
    config = with_changes(bot_config, registry={"url": refused_url})
    async with open_console(config) as console:
        deploy = await console.run("/deploy nova v2")
        status = await console.run("/status nova")
        await console.wait()

    assert re.fullmatch(
        rf"✘ cannot check nova:v2 in the registry: registry at {refused_url} is unreachable"
        r"[^\n]*\nnothing was changed",
        deploy,
    ), deploy
    assert "running:" not in status
    assert not any(m.startswith("[op-") for m in console.out.messages)
    assert desired_state(sandbox, "nova") == before
