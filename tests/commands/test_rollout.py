"""The rollout commands against the sandbox: what the user sees and what changed in the cluster.

The bot reaches the sandbox the production way (kubeconfig, the official client, HTTP); its
registry is Debian's real docker-registry. Cluster state is asserted through the sandbox's
store and, where operators would compare, through the real kubectl. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, TypedDict

import aiohttp
import pytest
from aiohttp import web

from commands.clients import kubectl
from commands.clients.kube import Kube
from commands.clients.registry import RegistryClient
from commands.core.config import KubernetesConfig, RegistryConfig, RolloutConfig
from commands.core.models import FinalResult, Outcome, ProgressUpdate, Tone
from commands.handlers.rollout import Rollouts
from commands.tracking.tracker import Tracker
from sandbox.resources import DEPLOYMENTS
from sandbox.serving import write_kubeconfig
from tests.commands.servers import Serve, fault_app
from tests.console.driver import crash_looping, new_pod_prefix
from tests.kubectl import kubectl as run_kubectl

NS = "holm"
REGISTRY_HOST = "10.110.67.87:5000"


class Asker(TypedDict):
    who: str
    platform: str


ALICE: Asker = {"who": "console:alice", "platform": "console"}
BOB: Asker = {"who": "console:bob", "platform": "console"}
POLICY = RolloutConfig(timeout_seconds=60, health_failure_seconds=5, verify_seconds=0)
LIMIT = 60.0  # seconds any one tracked operation may take in a test


def image(service: str, tag: str) -> str:
    return f"{REGISTRY_HOST}/{service}:{tag}"


class Bot:
    """The rollout handlers wired to one Kubernetes API, as the dispatcher wires them."""

    def __init__(self, kube: Kube, tracker: Tracker, rollouts: Rollouts) -> None:
        self.kube, self.tracker, self.rollouts = kube, tracker, rollouts

    @classmethod
    async def start(
        cls,
        kubeconfig: Path,
        tags: Callable[[str], Any],
        policy: RolloutConfig = POLICY,
    ) -> Bot:
        settings = KubernetesConfig(kubeconfig=kubeconfig, request_timeout_seconds=5)
        kube = await Kube.from_config(settings, NS)
        tracker = Tracker(kube, policy)
        return cls(kube, tracker, Rollouts(kube, tracker, registry_host=REGISTRY_HOST, tags=tags))

    async def stop(self) -> None:
        await self.tracker.close()
        await self.kube.close()


@pytest.fixture
async def registry(sandbox: Any) -> AsyncIterator[RegistryClient]:
    async with RegistryClient(RegistryConfig(url=sandbox.endpoints.registry)) as client:
        yield client


@pytest.fixture
async def bot(sandbox: Any, registry: RegistryClient) -> AsyncIterator[Bot]:
    started = await Bot.start(sandbox.kubeconfig, registry.tags)
    try:
        yield started
    finally:
        await started.stop()


def deployment(sandbox: Any, name: str) -> kubectl.Obj:
    return sandbox.store.get(DEPLOYMENTS, NS, name)


def desired_state(sandbox: Any, name: str) -> tuple[Any, ...]:
    """What a change would alter: generation, spec and annotations (status moves on its own)."""
    live = deployment(sandbox, name)
    meta = live["metadata"]
    return meta["generation"], live["spec"], meta.get("annotations"), meta.get("labels")


async def settle(sandbox: Any, name: str) -> None:
    """Wait (bounded, with kubectl's own watch) until the Deployment has rolled out."""
    done = await run_kubectl(
        sandbox.kubeconfig, "-n", NS, "rollout", "status", f"deployment/{name}", "--timeout=30s"
    )
    assert done.code == 0, done.stderr


def current_image(sandbox: Any, name: str, container: str | None = None) -> str:
    containers = deployment(sandbox, name)["spec"]["template"]["spec"]["containers"]
    return next(c["image"] for c in containers if c["name"] == (container or name))


async def finish(outcome: Outcome) -> tuple[list[ProgressUpdate], FinalResult]:
    """Every progress update of a tracked operation, and its final result."""
    assert outcome.progress is not None, outcome.reply.text
    updates: list[ProgressUpdate] = []
    async with asyncio.timeout(LIMIT):
        async for item in outcome.progress:
            if isinstance(item, FinalResult):
                return updates, item
            updates.append(item)
    raise AssertionError("the progress stream ended without a final result")


async def kubectl_history(sandbox: Any, name: str) -> list[tuple[int, str]]:
    """`kubectl rollout history` as (revision, change-cause) rows."""
    result = await run_kubectl(
        sandbox.kubeconfig, "-n", NS, "rollout", "history", f"deployment/{name}"
    )
    assert result.code == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[1].split() == ["REVISION", "CHANGE-CAUSE"]
    rows = [line.split(None, 1) for line in lines[2:] if line.strip()]
    return [(int(number), cause.strip()) for number, cause in rows]


async def our_history(bot: Bot, name: str) -> list[tuple[int, str]]:
    outcome = await bot.rollouts.history(name)
    assert outcome.reply.table is not None, outcome.reply.text
    return [(int(row[0].split()[0]), row[2]) for row in outcome.reply.table.rows]


# --- deploy -------------------------------------------------------------------------------


async def test_deploy_tracks_the_rollout_to_success(sandbox: Any, bot: Bot) -> None:
    outcome = await bot.rollouts.deploy("nova", "v2", **ALICE)

    assert outcome.reply.title == "Deploying nova:v2"
    assert {f.name: f.value for f in outcome.reply.fields}["image"] == (
        f"{image('nova', 'v1.1')} → {image('nova', 'v2')}"
    )
    updates, final = await finish(outcome)
    assert final.ok, final.message
    assert final.message.startswith(
        'deploy nova:v2 done: deployment "nova" successfully rolled out'
    )
    messages = [u.message for u in updates]
    assert any(m.startswith('Waiting for deployment "nova" rollout to finish: ') for m in messages)
    assert messages[-1] == 'deployment "nova" successfully rolled out'
    assert all(a != b for a, b in itertools.pairwise(updates)), "only changes are sent"
    assert {u.operation_id for u in updates} == {final.operation_id}
    assert updates[-1].desired == updates[-1].available == 2

    live = deployment(sandbox, "nova")
    assert current_image(sandbox, "nova") == image("nova", "v2")
    assert live["metadata"]["annotations"][kubectl.CHANGE_CAUSE] == (
        "holmbot deploy nova:v2 by console:alice via console"
    )
    assert live["status"]["availableReplicas"] == 2
    assert bot.tracker.running("nova") is None
    status = await run_kubectl(sandbox.kubeconfig, "-n", NS, "rollout", "status", "deployment/nova")
    assert status.stdout.strip() == 'deployment "nova" successfully rolled out'
    assert (await kubectl_history(sandbox, "nova"))[-1] == (
        3,
        "holmbot deploy nova:v2 by console:alice via console",
    )


async def test_deploy_of_a_missing_tag_changes_nothing(sandbox: Any, bot: Bot) -> None:
    before = desired_state(sandbox, "nova")

    outcome = await bot.rollouts.deploy("nova", "v9", **ALICE)

    assert outcome.progress is None
    assert outcome.reply.tone is Tone.ERROR
    assert outcome.reply.title == "nova:v9 is not in the registry; nothing was changed"
    assert outcome.reply.lines == ["newest tags: v3, v2, v2-broken, v1.1, v1"]
    assert desired_state(sandbox, "nova") == before
    assert bot.tracker.running("nova") is None


async def test_deploy_of_an_unknown_service_suggests_close_names(bot: Bot) -> None:
    outcome = await bot.rollouts.deploy("nvoa", "v2", **ALICE)

    assert outcome.progress is None
    assert outcome.reply.title == 'no service "nvoa" in namespace holm'
    assert outcome.reply.lines == ["did you mean nova?"]


async def test_deploy_changes_only_the_container_named_like_the_service(
    sandbox: Any, bot: Bot
) -> None:
    sidecar = current_image(sandbox, "gateway", "envoy")
    refused = await bot.rollouts.deploy("gateway", "v2.2.0", container="web", **ALICE)
    assert refused.reply.title == "gateway has no container web"
    assert refused.reply.lines == ["containers: gateway, envoy"]

    _, final = await finish(await bot.rollouts.deploy("gateway", "v2.2.0", **ALICE))

    assert final.ok, final.message
    assert current_image(sandbox, "gateway") == image("gateway", "v2.2.0")
    assert current_image(sandbox, "gateway", "envoy") == sidecar


async def test_crash_looping_deploy_is_rolled_back_and_says_why(sandbox: Any, bot: Bot) -> None:
    outcome = await bot.rollouts.deploy("nova", "v2-broken", **ALICE)

    updates, final = await finish(outcome)

    assert not final.ok
    assert final.trigger == "100% of new pods failing"
    assert final.reason == "CrashLoopBackOff"
    assert final.rolled_back_to == 2
    assert "rollback trigger fired: 100% of new pods failing (nova-" in final.message
    assert f"rolled back to revision 2 ({image('nova', 'v1.1')}) (now revision 4)" in final.message
    assert any(m.message.endswith("rolling back to revision 2") for m in updates)
    crashing = crash_looping(new_pod_prefix(sandbox, "nova", image("nova", "v2-broken")))
    assert any(crashing.fullmatch(p) for u in updates for p in u.problems), updates
    assert current_image(sandbox, "nova") == image("nova", "v1.1")
    assert deployment(sandbox, "nova")["status"]["availableReplicas"] == 2
    assert [number for number, _ in await kubectl_history(sandbox, "nova")] == [1, 3, 4]


async def test_report_mode_only_reports_a_trigger(sandbox: Any, registry: RegistryClient) -> None:
    policy = RolloutConfig(timeout_seconds=60, auto_rollback="report")
    bot = await Bot.start(sandbox.kubeconfig, registry.tags, policy)
    try:
        _, final = await finish(await bot.rollouts.deploy("nova", "v2-broken", **ALICE))
    finally:
        await bot.stop()

    assert not final.ok
    assert final.trigger == "100% of new pods failing"
    assert final.rolled_back_to is None
    assert "not rolled back (auto_rollback is set to report)" in final.message
    assert current_image(sandbox, "nova") == image("nova", "v2-broken")


async def test_pods_failing_health_too_long_trigger_a_rollback(
    sandbox: Any, registry: RegistryClient
) -> None:
    policy = RolloutConfig(timeout_seconds=60, health_failure_seconds=0.3)
    bot = await Bot.start(sandbox.kubeconfig, registry.tags, policy)
    try:
        _, final = await finish(await bot.rollouts.deploy("cicd-controller", "v0.5.0", **ALICE))
    finally:
        await bot.stop()

    assert not final.ok
    assert final.trigger == "health failing > 0.3s"
    assert "cicd-controller-" in final.message and ": not ready, for " in final.message
    assert final.rolled_back_to == 2
    assert current_image(sandbox, "cicd-controller") == image("cicd-controller", "v0.4.0")


async def test_a_leak_after_the_rollout_is_caught_while_verifying(
    sandbox: Any, registry: RegistryClient
) -> None:
    patient = POLICY.model_copy(update={"verify_seconds": 30})
    bot = await Bot.start(sandbox.kubeconfig, registry.tags, patient)
    try:
        updates, final = await finish(await bot.rollouts.deploy("pulse", "v1.3-leak", **ALICE))
    finally:
        await bot.stop()

    verifying = 'deployment "pulse" successfully rolled out (checking the new pods for 30s)'
    assert verifying in [u.message for u in updates]
    assert not final.ok
    assert final.reason == "OOMKilled"
    assert final.rolled_back_to == 3
    assert current_image(sandbox, "pulse") == image("pulse", "v1.2")


async def test_progress_deadline_exceeded_ends_tracking_like_kubectl(
    sandbox: Any, registry: RegistryClient
) -> None:
    shortened = await run_kubectl(
        sandbox.kubeconfig,
        *("-n", NS, "patch", "deployment/registry-ui"),
        *("-p", '{"spec":{"progressDeadlineSeconds":40}}'),
    )
    assert shortened.code == 0, shortened.stderr
    policy = RolloutConfig(timeout_seconds=60, health_failure_seconds=60)
    bot = await Bot.start(sandbox.kubeconfig, registry.tags, policy)
    try:
        updates, final = await finish(await bot.rollouts.deploy("registry-ui", "v1.1", **ALICE))
    finally:
        await bot.stop()

    assert not final.ok
    assert final.reason == "ProgressDeadlineExceeded"
    assert final.message.startswith(
        'deploy registry-ui:v1.1 failed: deployment "registry-ui" exceeded its progress deadline'
    )
    assert any("registry-ui-" in p and "not ready" in p for u in updates for p in u.problems)
    status = await run_kubectl(
        sandbox.kubeconfig, "-n", NS, "rollout", "status", "deployment/registry-ui"
    )
    assert status.stderr.strip() == 'error: deployment "registry-ui" exceeded its progress deadline'


async def test_tracking_gives_up_after_the_rollout_timeout(
    sandbox: Any, registry: RegistryClient
) -> None:
    policy = RolloutConfig(timeout_seconds=0.5, health_failure_seconds=60)
    bot = await Bot.start(sandbox.kubeconfig, registry.tags, policy)
    try:
        _, final = await finish(await bot.rollouts.deploy("registry-ui", "v1.1", **ALICE))
        assert bot.tracker.running("registry-ui") is None
    finally:
        await bot.stop()

    assert not final.ok
    assert final.reason == "timeout"
    assert final.message.startswith(
        'deploy registry-ui:v1.1 failed: timed out after 0.5s: Waiting for deployment "registry-ui"'
    )


# --- concurrency ----------------------------------------------------------------------------


async def test_two_services_deployed_at_once_are_each_tracked_to_their_end(
    sandbox: Any, bot: Bot
) -> None:
    nova, gateway = await asyncio.gather(
        bot.rollouts.deploy("nova", "v2", **ALICE),
        bot.rollouts.deploy("gateway", "v2.2.0", **BOB),
    )
    assert {op.service for op in bot.tracker.operations()} == {"nova", "gateway"}

    (nova_updates, nova_final), (gateway_updates, gateway_final) = await asyncio.gather(
        finish(nova), finish(gateway)
    )

    assert nova_final.ok and gateway_final.ok
    assert nova_final.operation_id != gateway_final.operation_id
    assert all(u.operation_id == nova_final.operation_id for u in nova_updates)
    assert all(u.operation_id == gateway_final.operation_id for u in gateway_updates)
    assert nova_updates[-1].message == 'deployment "nova" successfully rolled out'
    assert gateway_updates[-1].message == 'deployment "gateway" successfully rolled out'
    assert current_image(sandbox, "nova") == image("nova", "v2")
    assert current_image(sandbox, "gateway") == image("gateway", "v2.2.0")
    assert bot.tracker.operations() == []


async def test_a_second_change_while_tracked_is_refused_naming_who_started(
    sandbox: Any, bot: Bot
) -> None:
    first = await bot.rollouts.deploy("nova", "v2", **ALICE)

    second = await bot.rollouts.restart("nova", **BOB)

    assert second.progress is None
    assert second.reply.tone is Tone.WARNING
    assert "deploy nova:v2 started by console:alice via console" in second.reply.title
    _, final = await finish(first)
    assert final.ok
    assert current_image(sandbox, "nova") == image("nova", "v2")
    _, restarted = await finish(await bot.rollouts.restart("nova", **BOB))
    assert restarted.ok


async def test_a_deployment_deleted_while_tracked_ends_tracking(sandbox: Any, bot: Bot) -> None:
    outcome = await bot.rollouts.deploy("nova", "v2", **ALICE)
    deleted = await run_kubectl(
        sandbox.kubeconfig, "-n", NS, "delete", "deployment/nova", "--wait=false"
    )
    assert deleted.code == 0, deleted.stderr

    _, final = await finish(outcome)

    assert not final.ok
    assert final.reason == "deleted"
    assert final.message.startswith('deploy nova:v2 failed: deployment "nova" was deleted')
    assert bot.tracker.running("nova") is None


async def test_closing_the_tracker_stops_watches_without_leaking_threads(bot: Bot) -> None:
    outcome = await bot.rollouts.deploy("nova", "v2", **ALICE)
    assert outcome.progress is not None
    first = await anext(outcome.progress)
    assert isinstance(first, ProgressUpdate)

    await bot.tracker.close()

    _, final = await finish(outcome)
    assert not final.ok and final.reason == "cancelled"

    def watch_threads() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name.startswith("watch-")]

    # a watch thread reports it has finished from its last lines, so give it a moment to end
    async with asyncio.timeout(2):
        while watch_threads():
            await asyncio.sleep(0.01)
    assert bot.tracker.running("nova") is None


# --- restart and scale ----------------------------------------------------------------------


async def test_restart_sets_restarted_at_and_rolls_out(sandbox: Any, bot: Bot) -> None:
    outcome = await bot.rollouts.restart("nova", **ALICE)

    assert outcome.reply.title == "Restarting nova"
    _, final = await finish(outcome)
    assert final.ok, final.message
    template = deployment(sandbox, "nova")["spec"]["template"]
    stamp = template["metadata"]["annotations"][kubectl.RESTARTED_AT]
    assert kubectl.parse_time(stamp) is not None and stamp.endswith("Z")
    assert current_image(sandbox, "nova") == image("nova", "v1.1")
    assert (await kubectl_history(sandbox, "nova"))[-1] == (
        3,
        "holmbot restart nova by console:alice via console",
    )


async def test_paused_deployment_is_not_restarted_or_rolled_back(sandbox: Any, bot: Bot) -> None:
    paused = await run_kubectl(sandbox.kubeconfig, "-n", NS, "rollout", "pause", "deployment/nova")
    assert paused.code == 0, paused.stderr
    before = desired_state(sandbox, "nova")

    restart = await bot.rollouts.restart("nova", **ALICE)
    undo = await bot.rollouts.rollback("nova", **ALICE)

    assert restart.reply.title == (
        'deployments.apps "nova" can\'t restart paused deployment (run rollout resume first)'
    )
    assert undo.reply.title == (
        "you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume' "
        "and try again"
    )
    assert restart.progress is None and undo.progress is None
    assert desired_state(sandbox, "nova") == before


async def test_scale_is_tracked_until_the_replicas_are_available(sandbox: Any, bot: Bot) -> None:
    outcome = await bot.rollouts.scale("gateway", 4, **ALICE)

    assert outcome.reply.title == "Scaling gateway from 3 to 4 replicas"
    updates, final = await finish(outcome)
    assert final.ok, final.message
    assert updates[-1].desired == updates[-1].available == 4
    live = deployment(sandbox, "gateway")
    assert live["spec"]["replicas"] == 4
    assert live["status"]["availableReplicas"] == 4


# --- rollback and history -------------------------------------------------------------------


async def test_rollback_to_previous_and_named_revision_with_history_like_kubectl(
    sandbox: Any, bot: Bot
) -> None:
    assert await our_history(bot, "nova") == await kubectl_history(sandbox, "nova")

    previous = await bot.rollouts.rollback("nova", **ALICE)

    assert previous.reply.title == "deployment.apps/nova rolled back to revision 1"
    _, final = await finish(previous)
    assert final.ok, final.message
    assert current_image(sandbox, "nova") == image("nova", "v1")
    history = await kubectl_history(sandbox, "nova")
    assert [number for number, _ in history] == [2, 3]
    assert await our_history(bot, "nova") == history

    named = await bot.rollouts.rollback("nova", 2, **ALICE)

    assert named.reply.title == "deployment.apps/nova rolled back to revision 2"
    _, final = await finish(named)
    assert final.ok, final.message
    assert current_image(sandbox, "nova") == image("nova", "v1.1")
    history = await kubectl_history(sandbox, "nova")
    assert [number for number, _ in history] == [3, 4]
    assert await our_history(bot, "nova") == history
    reply = (await bot.rollouts.history("nova")).reply
    assert reply.table is not None
    assert reply.table.rows[-1][:2] == ["4 (current)", image("nova", "v1.1")]
    assert {f.name: f.value for f in reply.fields}["maximum rollback depth"] == (
        "10 (revisionHistoryLimit), 1 earlier revision kept"
    )


async def test_rollback_skips_and_refuses_in_kubectls_words(sandbox: Any, bot: Bot) -> None:
    before = desired_state(sandbox, "nova")

    skipped = await bot.rollouts.rollback("nova", 2, **ALICE)
    missing = await bot.rollouts.rollback("nova", 7, **ALICE)
    unknown_revision = await bot.rollouts.history("nova", 9)

    kubectl_skip = await run_kubectl(
        sandbox.kubeconfig, "-n", NS, "rollout", "undo", "deployment/nova", "--to-revision=2"
    )
    kubectl_missing = await run_kubectl(
        sandbox.kubeconfig, "-n", NS, "rollout", "undo", "deployment/nova", "--to-revision=7"
    )
    assert skipped.reply.title == kubectl_skip.stdout.strip()
    assert skipped.reply.title == (
        "deployment.apps/nova skipped rollback (current template already matches revision 2)"
    )
    assert missing.reply.tone is Tone.ERROR
    assert f"error: {missing.reply.title}" == kubectl_missing.stderr.strip()
    assert unknown_revision.reply.title == "unable to find the specified revision"
    assert skipped.progress is None and missing.progress is None
    assert desired_state(sandbox, "nova") == before


async def test_status_is_kubectls_one_shot_status(sandbox: Any, bot: Bot) -> None:
    await settle(sandbox, "nova")
    outcome = await bot.rollouts.status("nova")

    kubectl_status = await run_kubectl(
        sandbox.kubeconfig, "-n", NS, "rollout", "status", "deployment/nova", "--watch=false"
    )
    assert outcome.progress is None
    assert outcome.reply.title == kubectl_status.stdout.strip()
    fields = {f.name: f.value for f in outcome.reply.fields}
    assert fields["image"] == image("nova", "v1.1")
    assert fields["replicas"] == "2 desired, 2 updated, 2 ready, 2 available"


# --- faults ---------------------------------------------------------------------------------


class InterferingProxy:
    """Passes the bot's HTTP through to the sandbox API; before forwarding the first
    `conflicts` PATCHes of a Deployment it lets `interfere()` change that Deployment, as a
    concurrent writer would, so the bot's conditional write meets the server's real 409."""

    def __init__(self, upstream: str, interfere: Callable[[], None], conflicts: int) -> None:
        self.upstream, self.interfere, self.conflicts = upstream, interfere, conflicts
        self.patches: list[int] = []  # the status the server gave each forwarded PATCH
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._forward)
        self.app.on_cleanup.append(self._close)
        self._session: aiohttp.ClientSession | None = None

    async def _close(self, _: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=False)
        patching = request.method == "PATCH" and "/deployments/" in request.path
        if patching and len(self.patches) < self.conflicts:
            self.interfere()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=await request.read(),
        ) as upstream:
            if patching:
                self.patches.append(upstream.status)
            response = web.StreamResponse(status=upstream.status)
            response.content_type = upstream.content_type
            await response.prepare(request)
            with contextlib.suppress(ConnectionResetError):  # a watch the bot has closed
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            return response


async def test_a_409_conflict_is_retried_with_a_fresh_read(
    sandbox: Any, registry: RegistryClient, serve: Serve, tmp_path: Path
) -> None:
    def touch_nova() -> None:
        live = deployment(sandbox, "nova")
        live["metadata"].setdefault("annotations", {})["example.com/touched"] = str(
            len(proxy.patches)
        )
        sandbox.store.update(DEPLOYMENTS, live)

    proxy = InterferingProxy(sandbox.endpoints.kubernetes, touch_nova, conflicts=2)
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", await serve(proxy.app), NS)
    bot = await Bot.start(kubeconfig, registry.tags)
    try:
        outcome = await bot.rollouts.deploy("nova", "v2", **ALICE)
        _, final = await finish(outcome)
    finally:
        await bot.stop()

    assert proxy.patches == [409, 409, 200]
    assert final.ok, final.message
    live = deployment(sandbox, "nova")
    assert current_image(sandbox, "nova") == image("nova", "v2")
    assert live["metadata"]["annotations"]["example.com/touched"] == "1"


async def test_conflicts_that_never_stop_give_up_cleanly(
    sandbox: Any, registry: RegistryClient, serve: Serve, tmp_path: Path
) -> None:
    def touch_nova() -> None:
        live = deployment(sandbox, "nova")
        live["metadata"].setdefault("labels", {})["touched"] = str(len(proxy.patches))
        sandbox.store.update(DEPLOYMENTS, live)

    proxy = InterferingProxy(sandbox.endpoints.kubernetes, touch_nova, conflicts=100)
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", await serve(proxy.app), NS)
    bot = await Bot.start(kubeconfig, registry.tags)
    try:
        outcome = await bot.rollouts.restart("nova", **ALICE)
        assert bot.tracker.running("nova") is None
    finally:
        await bot.stop()

    assert outcome.progress is None
    assert outcome.reply.title == (
        "nova kept changing while holmbot updated it (5 conflicts in a row); "
        "nothing was changed, try again"
    )
    assert proxy.patches == [409] * 5
    assert kubectl.RESTARTED_AT not in (
        deployment(sandbox, "nova")["spec"]["template"]["metadata"].get("annotations") or {}
    )


async def always_v2(repository: str) -> Sequence[str]:
    return ["v2"]


async def test_unreachable_kubernetes_api_gives_a_clear_reply(
    refused_url: str, tmp_path: Path
) -> None:
    bot = await Bot.start(write_kubeconfig(tmp_path / "kubeconfig", refused_url, NS), always_v2)
    try:
        outcome = await bot.rollouts.deploy("nova", "v2", **ALICE)
        history = await bot.rollouts.history("nova")
    finally:
        await bot.stop()

    assert outcome.progress is None
    assert outcome.reply.tone is Tone.ERROR
    assert outcome.reply.title == (
        f"deploy nova:v2 failed: Kubernetes API at {refused_url} is unreachable "
        "(connection refused)"
    )
    assert history.reply.title == (
        f"history of nova failed: Kubernetes API at {refused_url} is unreachable "
        "(connection refused)"
    )
    assert bot.tracker.running("nova") is None


async def test_kubernetes_api_answering_500_gives_a_clear_reply(
    serve: Serve, tmp_path: Path
) -> None:
    url = await serve(fault_app("500"))
    bot = await Bot.start(write_kubeconfig(tmp_path / "kubeconfig", url, NS), always_v2)
    try:
        outcome = await bot.rollouts.rollback("nova", **ALICE)
    finally:
        await bot.stop()

    assert outcome.progress is None
    assert outcome.reply.title == (
        f"rollback nova failed: Kubernetes API at {url} answered 500 Internal Server Error: "
        '{"error": "internal error"}'
    )
    assert "Traceback" not in outcome.reply.text
