"""Roles, approvals and the audit log through the console, as several users (issue 4)."""

from __future__ import annotations

import asyncio
import json
import os
import re
from datetime import timedelta
from typing import Any

import pytest

from commands.access.policy import AccessConfig
from commands.core.config import Config
from commands.core.models import Invocation, User
from commands.core.parser import parse_command
from commands.flow.layer import CommandLayer
from commands.store.state import RequestStatus, State, utcnow
from sandbox.cluster import Sandbox
from sandbox.demo_policy import demo_access
from tests.console.driver import (
    Console,
    audit_log,
    current_image,
    deployment,
    desired_state,
    image,
    open_console,
    operation_id,
    pods,
    rolled_out,
)
from tests.polling import eventually

_REQUEST = re.compile(r"→ approve (\w+) · deny")


def request_id(reply: str) -> str:
    match = _REQUEST.search(reply)
    assert match is not None, f"no approval request in:\n{reply}"
    return match.group(1)


def with_access(config: Config, **changes: Any) -> Config:
    """The demo policy with some top-level parts of `access` replaced."""
    access = AccessConfig.model_validate({**demo_access(), **changes})
    return config.model_copy(update={"access": access})


def revisions(sandbox: Sandbox, name: str) -> int:
    return int(
        deployment(sandbox, name)["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
    )


def placed(sandbox: Sandbox, app: str, image: str) -> bool:
    """A pod of `app` running `image` is bound to a node (so the kubelet runs it)."""
    return any(
        pod["spec"].get("nodeName") and image in {c["image"] for c in pod["spec"]["containers"]}
        for pod in pods(sandbox, app)
    )


def observed(sandbox: Sandbox, name: str) -> bool:
    """The Deployment controller has seen the Deployment's latest spec."""
    live = deployment(sandbox, name)
    return (live.get("status") or {}).get("observedGeneration") == live["metadata"]["generation"]


async def test_a_viewer_is_refused_and_told_which_role_it_needs(
    console: Console, sandbox: Sandbox, bot_config: Config
) -> None:
    before = desired_state(sandbox, "nova")
    reply = await console.run("as console:carol: deploy nova v2")
    assert reply == (
        "✘ not allowed: deploy needs the role deployer or admin; console:carol has viewer"
    )
    health = await console.run("as console:carol: health nova")
    assert "not allowed" not in health
    assert desired_state(sandbox, "nova") == before
    refused = [e for e in await audit_log(bot_config) if e["outcome"] == "refused"]
    assert refused[-1]["user"] == "console:carol"
    assert refused[-1]["action"] == "deploy"
    assert "deployer or admin" in refused[-1]["detail"]


async def test_protected_service_needs_an_admin_and_a_deny_changes_nothing(
    console: Console, sandbox: Sandbox, bot_config: Config
) -> None:
    direct = await console.run("as console:alice: restart nova")
    assert "approval needed" not in direct
    before = desired_state(sandbox, "postgres")
    asked = await console.run("as console:alice: deploy postgres 16.2")
    rid = request_id(asked)
    assert "will run: deploy postgres 16.2 as console:alice" in asked
    assert "1 approval from admin" in asked
    assert f"→ approve {rid} · deny {rid}" in asked
    denied = await console.run(f"as console:bob: deny {rid}")
    assert "denied" in denied
    late = await console.run(f"as console:dave: approve {rid}")
    assert late == f"✘ request {rid} is already denied; nothing changed"
    await console.wait()
    assert desired_state(sandbox, "postgres") == before
    outcomes = [e["outcome"] for e in await audit_log(bot_config) if e.get("request_id") == rid]
    assert "approval-requested" in outcomes
    assert "denied" in outcomes


async def test_missing_tag_is_refused_before_any_request_is_opened(console: Console) -> None:
    reply = await console.run("as console:alice: deploy postgres 99.9")
    assert "postgres:99.9 is not in the registry" in reply
    assert "approval needed" not in reply
    assert await console.run("approvals") == "no pending approval requests"


async def test_an_admins_approval_runs_the_deploy_once_as_the_requester(
    console: Console, sandbox: Sandbox, bot_config: Config
) -> None:
    rid = request_id(await console.run("as console:alice: deploy postgres 16.2"))
    own = await console.run(f"as console:alice: approve {rid}")
    assert "console:alice asked for" in own and "cannot approve" in own
    stranger = await console.run(f"as console:carol: approve {rid}")
    assert stranger == f"✘ approve {rid} needs the role admin; console:carol has viewer"
    assert current_image(sandbox, "postgres") == image("postgres", "15.6")
    approved = await console.run(f"as console:bob: approve {rid}")
    assert "approved" in approved
    await console.wait()
    assert current_image(sandbox, "postgres") == image("postgres", "16.2")
    annotations = deployment(sandbox, "postgres")["metadata"]["annotations"]
    assert "by console:alice via console" in annotations["kubernetes.io/change-cause"]
    finals = [m for m in console.out.messages if "✔ deploy postgres:16.2 done" in m]
    assert len(finals) == 1
    again = await console.run(f"as console:dave: approve {rid}")
    assert again == f"✘ request {rid} is already executed; nothing changed"
    await console.wait()
    assert revisions(sandbox, "postgres") == 3
    entries = [e for e in await audit_log(bot_config) if e.get("request_id") == rid]
    ran = [e for e in entries if e["action"] == "deploy" and e["outcome"] == "ok"]
    assert len(ran) == 1
    assert ran[0]["user"] == "console:alice"
    assert ran[0]["approvers"] == ["console:bob"]
    assert ran[0]["duration_ms"] > 0
    refused = [e for e in entries if e["outcome"] == "refused"]
    assert {"console:alice", "console:carol"} <= {e["user"] for e in refused}


@pytest.mark.parametrize(
    ("command", "why"),
    [
        ("deploy postgres 16.2 --container nope", "✘ postgres has no container nope"),
        ("rollback postgres 99", "✘ unable to find specified revision 99"),
        (
            "deploy postgres 15.6",
            "postgres already runs 10.110.67.87:5000/postgres:15.6; nothing",
        ),
        ("deploy postgres 9.9", "✘ postgres:9.9 is not in the registry; nothing was changed"),
    ],
)
async def test_what_running_would_refuse_is_refused_before_a_request_is_opened(
    console: Console, sandbox: Sandbox, command: str, why: str
) -> None:
    before = desired_state(sandbox, "postgres")
    reply = await console.run(f"as console:alice: {command}")
    assert reply.startswith(why), reply
    assert "approve" not in reply
    assert await console.run("approvals") == "no pending approval requests"
    assert desired_state(sandbox, "postgres") == before


async def test_an_approved_request_refused_when_it_runs_is_not_left_executed(
    console: Console, sandbox: Sandbox, bot_config: Config
) -> None:
    # alice asks while postgres is free; it is busy when bob's approval arrives
    asked = request_id(await console.run("as console:alice: scale postgres 2"))
    restart = request_id(await console.run("as console:alice: restart postgres"))
    await console.run(f"as console:dave: approve {restart}")
    busy = await console.run(f"as console:bob: approve {asked}")
    await console.wait()
    assert "postgres is busy" in console.text, console.text
    assert deployment(sandbox, "postgres")["spec"]["replicas"] == 1
    async with await State.in_dir(bot_config.state_dir, read_only=True) as state:
        request = await state.get_request(asked)
    assert request is not None and request.status == "refused", busy
    entries = [e for e in await audit_log(bot_config) if e.get("request_id") == asked]
    assert [e["outcome"] for e in entries][-1] == "refused"


async def test_two_distinct_approvals_when_the_policy_says_two(
    sandbox: Sandbox, bot_config: Config
) -> None:
    two = {"approvals": 2, "approvers": ["admin"], "expires_after": "1h"}
    config = with_access(bot_config, actions={"scale": {"approval": two}})
    async with open_console(config) as console:
        rid = request_id(await console.run("as console:alice: scale nova 3"))
        first = await console.run(f"as console:bob: approve {rid}")
        assert first.startswith(f"approval 1 of 2 for {rid} recorded (console:bob)"), first
        twice = await console.run(f"as console:bob: approve {rid}")
        assert "already" in twice
        assert deployment(sandbox, "nova")["spec"]["replicas"] == 2
        await console.run(f"as console:dave: approve {rid}")
        await console.wait()
        assert deployment(sandbox, "nova")["spec"]["replicas"] == 3
        await eventually(lambda: rolled_out(sandbox, "nova"))


async def test_a_request_expires_and_says_so(sandbox: Sandbox, bot_config: Config) -> None:
    short = {"approvals": 1, "approvers": ["admin"], "expires_after": 1}
    config = with_access(bot_config, protected_approval=short)
    before = desired_state(sandbox, "postgres")
    async with open_console(config) as console:
        rid = request_id(await console.run("as console:alice: restart postgres"))
        expired = await eventually(
            lambda: [m for m in console.out.messages if f"request {rid} expired" in m], 10
        )
        assert (
            "restart postgres (asked by console:alice) was not approved in time; nothing ran"
        ) in expired[0]
        late = await console.run(f"as console:bob: approve {rid}")
        assert late == f"✘ request {rid} is already expired; nothing changed"
        await console.wait()
    assert desired_state(sandbox, "postgres") == before
    writes = [r for r in sandbox.api_requests if r.verb not in ("get", "list", "watch")]
    assert writes == [], writes  # the bot sent the Kubernetes API no change at all
    entries = [e for e in await audit_log(config) if e.get("request_id") == rid]
    assert [(e["user"], e["outcome"]) for e in entries] == [
        ("console:alice", "approval-requested"),
        ("console:alice", "expired"),
        ("console:bob", "refused"),
    ]


async def test_pending_request_survives_a_restart_and_runs_exactly_once(
    sandbox: Sandbox, bot_config: Config
) -> None:
    async with open_console(bot_config) as first:
        rid = request_id(await first.run("as console:alice: scale postgres 2"))
    async with open_console(bot_config) as second:
        listed = await second.run("approvals")
        assert rid in listed
        await second.run(f"as console:bob: approve {rid}")
        await second.wait()
        assert deployment(sandbox, "postgres")["spec"]["replicas"] == 2
    async with open_console(bot_config) as third:
        again = await third.run(f"as console:dave: approve {rid}")
        assert again == f"✘ request {rid} is already executed; nothing changed"
    ran = [
        e
        for e in await audit_log(bot_config)
        if e.get("request_id") == rid and e["action"] == "scale" and e["outcome"] == "ok"
    ]
    assert len(ran) == 1


async def approved_while_stopped(config: Config, text: str, expires_in: timedelta) -> str:
    """A request of alice's that bob approved, then the bot stopped before running it."""
    alice = User.parse("console:alice")
    async with await State.in_dir(config.state_dir) as state:
        request = await state.create_request(
            Invocation(user=alice, channel="console", text=text),
            parse_command(text),
            approvals_needed=1,
            approver_roles=["admin"],
            expires_at=utcnow() + expires_in,
        )
        await state.record_vote(request.id, "console:bob", True)
        assert await state.set_request_status(request.id, RequestStatus.APPROVED)
    return request.id


async def test_a_request_approved_just_before_a_stop_runs_once_after_the_restart(
    sandbox: Sandbox, bot_config: Config
) -> None:
    rid = await approved_while_stopped(bot_config, "scale postgres 2", timedelta(hours=1))
    async with open_console(bot_config) as console:
        await console.wait()
    assert deployment(sandbox, "postgres")["spec"]["replicas"] == 2
    assert "lost track" not in console.text, console.text
    assert "scale postgres to 2 done" in console.text, console.text
    entries = [e for e in await audit_log(bot_config) if e["action"] == "scale"]
    assert [(e["outcome"], e["user"], e["request_id"]) for e in entries] == [
        ("ok", "console:alice", rid)
    ]
    async with await State.in_dir(bot_config.state_dir, read_only=True) as state:
        assert await state.unfinished_operations() == []


async def test_an_approved_request_is_not_run_late_after_a_long_stop(
    sandbox: Sandbox, bot_config: Config
) -> None:
    rid = await approved_while_stopped(bot_config, "scale postgres 2", timedelta(minutes=-5))
    async with open_console(bot_config) as console:
        await console.wait()
    assert f"! request {rid} expired" in console.text, console.text
    assert (
        "scale postgres 2 (asked by console:alice) was approved, but the bot was stopped "
        "until after its time was up; nothing ran"
    ) in console.text
    assert deployment(sandbox, "postgres")["spec"]["replicas"] == 1
    entries = [e for e in await audit_log(bot_config) if e.get("request_id") == rid]
    assert [e["outcome"] for e in entries] == ["expired"]


async def test_a_rollout_in_flight_is_picked_up_after_a_restart(
    sandbox: Sandbox, bot_config: Config
) -> None:
    first = Console(await CommandLayer.open(bot_config))
    op = operation_id(await first.run("as console:alice: deploy gateway v2.2.0"))
    await first.stop_bot()  # in the middle of the rollout
    assert "tracking stopped" in first.final(op)
    assert not rolled_out(sandbox, "gateway")
    async with open_console(bot_config) as second:
        await eventually(lambda: any(op in m and "again" in m for m in second.out.messages))
        await second.wait()
        assert second.final(op).startswith(f"[{op}] ✔ deploy gateway:v2.2.0 done")
    assert rolled_out(sandbox, "gateway")
    entries = [e for e in await audit_log(bot_config) if e["action"] == "deploy"]
    assert [e["outcome"] for e in entries] == ["ok"]
    assert entries[0]["user"] == "console:alice"


async def test_an_automatic_rollback_cut_off_by_a_stop_is_finished_after_the_restart(
    sandbox: Sandbox, bot_config: Config
) -> None:
    first = Console(await CommandLayer.open(bot_config))
    op = operation_id(await first.run("as console:alice: deploy nova v2-broken"))
    # once a broken pod runs, the cluster's controllers stop: the kubelet still crashes it, so
    # the trigger fires and the undo is written, but the rollback cannot roll out before the stop
    await eventually(lambda: placed(sandbox, "nova", image("nova", "v2-broken")))
    await sandbox.controller.stop()
    await eventually(
        lambda: any(
            m.startswith(f"[{op}]") and "rolling back to revision 2" in m
            for m in first.out.messages
        )
    )
    await eventually(lambda: current_image(sandbox, "nova") == image("nova", "v1.1"))
    await first.stop_bot()
    cut_off = f"[{op}] ✘ deploy nova:v2-broken failed: tracking stopped ("
    assert first.final(op).startswith(cut_off), first.text
    sandbox.controller.start()
    await eventually(lambda: observed(sandbox, "nova"))  # the controller has seen the undo
    async with open_console(bot_config) as second:
        await second.wait()
    final = second.final(op)
    assert final.startswith(f"[{op}] ✘ deploy nova:v2-broken failed: rollback trigger fired: "), (
        final
    )
    resumed = '; rolled back to revision 2 before the restart (now revision 4); deployment "nova"'
    assert f"{resumed} successfully rolled out (" in final, final
    assert f"following deploy nova:v2-broken again ({op})" in second.text, second.text
    assert current_image(sandbox, "nova") == image("nova", "v1.1")
    assert rolled_out(sandbox, "nova")
    entries = [e for e in await audit_log(bot_config) if e["action"] == "deploy"]
    assert [e["outcome"] for e in entries] == ["auto-rollback"], entries
    async with await State.in_dir(bot_config.state_dir, read_only=True) as state:
        assert await state.unfinished_operations() == []


async def test_the_same_delivery_twice_runs_once_even_across_a_restart(
    sandbox: Sandbox, bot_config: Config
) -> None:
    alice = User.parse("console:alice")
    delivery = Invocation(user=alice, channel="ops", text="restart nova", delivery_id="ev-1")
    layer = await CommandLayer.open(bot_config)
    try:
        first = await layer.handle(delivery)
        second = await layer.handle(delivery)
        assert not first.duplicate and first.progress is not None
        assert second.duplicate and second.progress is None
        async for _ in first.progress:
            pass
    finally:
        await layer.close()
    layer = await CommandLayer.open(bot_config)
    try:
        assert (await layer.handle(delivery)).duplicate
    finally:
        await layer.close()
    entries = [e for e in await audit_log(bot_config) if e["command"] == "restart nova"]
    assert sorted(e["outcome"] for e in entries) == ["duplicate", "duplicate", "ok"]
    assert revisions(sandbox, "nova") == 3


async def test_audit_command_and_cli(console: Console, bot_config: Config) -> None:
    await console.run("as console:carol: scale nova 5")
    await console.run("health nova")
    refused = await console.run("as console:alice: audit")
    assert "not allowed" in refused
    shown = await console.run("audit 5")
    assert "console:carol" in shown and "refused" in shown
    process = await asyncio.create_subprocess_exec(
        "holmbot",
        "audit",
        "--format",
        "json",
        "--user",
        "console:carol",
        env={
            "HOLMBOT_CONFIG": str(bot_config.state_dir.parent / "holmbot.yaml"),
            "PATH": os.environ["PATH"],
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    entries = json.loads(stdout)
    assert [(e["user"], e["action"], e["outcome"]) for e in entries] == [
        ("console:carol", "scale", "refused")
    ]


async def test_a_fired_trigger_can_ask_for_the_rollback_instead(
    sandbox: Sandbox, bot_config: Config
) -> None:
    config = bot_config.model_copy(
        update={"rollout": bot_config.rollout.model_copy(update={"auto_rollback": "approve"})}
    )
    async with open_console(config) as console:
        op = operation_id(await console.run("as console:alice: deploy nova v2-broken"))
        question = await eventually(
            lambda: [m for m in console.out.messages if m.startswith("! Roll nova back")], 60
        )
        assert "revision 2?" in question[0]
        assert "needs an approval" in console.final(op)
        assert current_image(sandbox, "nova") == image("nova", "v2-broken")
        rid = request_id(question[0])
        await console.run(f"as console:bob: approve {rid}")
        await console.wait()
        assert current_image(sandbox, "nova") == image("nova", "v1.1")
    entries = [e for e in await audit_log(config) if e.get("request_id") == rid]
    assert [(e["user"], e["action"], e["outcome"]) for e in entries if e["outcome"] == "ok"] == [
        ("console:holmbot", "rollback", "ok")
    ]


async def test_a_leak_after_the_rollout_is_rolled_back_while_verifying(
    sandbox: Sandbox, bot_config: Config
) -> None:
    rollout = bot_config.rollout.model_copy(update={"verify_seconds": 10.0})
    async with open_console(bot_config.model_copy(update={"rollout": rollout})) as console:
        op = operation_id(await console.run("deploy pulse v1.3-leak"))
        await console.wait()
        final = console.final(op)
        assert final.startswith(
            f"[{op}] ✘ deploy pulse:v1.3-leak failed: rollback trigger fired: "
            "100% of new pods failing ("
        ), final
        assert "; rolled back to revision 3 (10.110.67.87:5000/pulse:v1.2) (now revision 5); " in (
            final
        )
        assert "OOMKilled" in final
        assert current_image(sandbox, "pulse") == image("pulse", "v1.2")
    entries = [e for e in await audit_log(bot_config) if e["action"] == "deploy"]
    assert [e["outcome"] for e in entries] == ["auto-rollback"]


async def test_reads_are_audited_by_whether_they_ran_not_by_what_they_found(
    sandbox: Sandbox, bot_config: Config
) -> None:
    await sandbox.wait_started()  # registry-ui's pod runs, never ready: its /health fails
    async with open_console(bot_config) as console:
        sick = await console.run("/health registry-ui")
        unknown = await console.run("/health nvoa")
        no_logs = await console.run("/logs nvoa")
    assert sick.startswith("✘ registry-ui: down, 0/1 available\n"), sick
    assert "/health: 503: health check failed: dependency check returned an error" in sick
    assert "/ready: 503: health check failed: dependency check returned an error" in sick
    assert unknown.startswith("✘ No deployment called nvoa"), unknown
    assert no_logs.startswith("! No pods with app=nvoa"), no_logs
    entries = {e["command"]: e for e in await audit_log(bot_config)}
    assert entries["/health registry-ui"]["outcome"] == "ok"  # it found a sick service: its job
    assert entries["/health registry-ui"]["error"] is None
    assert entries["/health nvoa"]["outcome"] == "refused"
    assert entries["/logs nvoa"]["outcome"] == "refused"


async def test_refusals_by_the_cluster_are_audited_as_refused(bot_config: Config) -> None:
    async with open_console(bot_config) as console:
        await console.run("as console:alice: deploy nova v2")
        busy = await console.run("as console:bob: deploy nova v3")
        assert "nova is busy" in busy and "started by console:alice" in busy
        unknown = await console.run("as console:bob: restart nvoa")
        assert 'no service "nvoa"' in unknown and "did you mean nova?" in unknown
    # closing the console lets every finished operation's audit entry be written
    entries = {e["command"]: e for e in await audit_log(bot_config)}
    assert entries["deploy nova v3"]["outcome"] == "refused"
    assert "busy" in entries["deploy nova v3"]["detail"]
    assert entries["restart nvoa"]["outcome"] == "refused"
    assert entries["deploy nova v2"]["outcome"] == "ok"
