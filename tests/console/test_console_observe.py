"""Logs, health and backups typed into the console, against the running sandbox."""

from __future__ import annotations

import re
from pathlib import Path

from commands.core.config import Config
from sandbox.cluster import Sandbox
from tests.console.driver import (
    NS,
    Console,
    current_image,
    image,
    last_termination_reasons,
    open_console,
    operation_id,
    pods,
    wait_for_log_lines,
    with_changes,
)
from tests.kubectl import kubectl
from tests.polling import eventually

CRASH_LINE = "nova.settings.ConfigError: missing required setting 'FEATURE_FLAGS_URL'"
OOM_ADVICE = (
    "OOMKilled: the container ran out of memory (limit 128Mi); increase memory limits (runbook 2.2)"
)


def crashed_pods(sandbox: Sandbox, tag: str) -> list[str]:
    """Pods running `tag` whose container has terminated at least once (a previous log)."""
    return [
        pod["metadata"]["name"]
        for pod in pods(sandbox, "nova")
        for status in (pod.get("status") or {}).get("containerStatuses") or []
        if status["image"].endswith(f":{tag}") and (status.get("lastState") or {}).get("terminated")
    ]


async def test_logs_previous_after_a_crash_with_rollback_only_reported(
    sandbox: Sandbox, bot_config: Config
) -> None:
    config = with_changes(bot_config, rollout={"auto_rollback": "report"})
    async with open_console(config) as console:
        op = operation_id(await console.run("/deploy nova v2-broken"))
        await console.wait()
        final = console.final(op)
        # which runbook trigger fires first depends on timing; any of them is reported only
        assert final.startswith(
            f"[{op}] ✘ deploy nova:v2-broken failed: rollback trigger fired: "
        ), final
        assert "; not rolled back (auto_rollback is set to report)" in final
        assert current_image(sandbox, "nova") == image("nova", "v2-broken")
        crashed = (await eventually(lambda: crashed_pods(sandbox, "v2-broken")))[0]

        logs = await console.run("/logs nova --previous")
        health = await console.run("/health nova")

    lines = logs.splitlines()
    assert re.fullmatch(r"nova logs: \d+ lines from previous \(crashed\) containers", lines[0])
    # the old pods have not crashed: each says so, and the crashed one's last words show
    healthy = {p["metadata"]["name"] for p in pods(sandbox, "nova")} - set(
        crashed_pods(sandbox, "v2-broken")
    )
    for name in healthy:
        assert f"note: no previous (crashed) container for pod {name}" in lines
    ours = [line for line in lines if line.startswith(f"[{crashed}] ")]
    assert ours[-1].endswith(f" {CRASH_LINE}"), logs
    theirs = await kubectl(sandbox.kubeconfig, "-n", NS, "logs", crashed, "--previous")
    assert theirs.code == 0, theirs.stderr
    assert theirs.stdout.strip().splitlines()[-1] == CRASH_LINE
    # (the pod keeps crashing, so which earlier run "previous" means can move on between the
    # two reads: only the crash line itself is compared)

    # the old pods still serve; the new one's state is where its crash loop has got to
    assert health.startswith("! nova: degraded, 2/2 available\n"), health
    advice = r"(Error|CrashLoopBackOff): the container keeps exiting; check /logs nova --previous"
    advised = [
        line for line in health.splitlines() if re.fullmatch(rf"{advice} \(runbook 2\.2\)", line)
    ]
    assert len(advised) == 1, health


async def test_long_logs_are_still_answered_when_their_file_cannot_be_written(
    sandbox: Sandbox, bot_config: Config, tmp_path: Path
) -> None:
    await wait_for_log_lines(sandbox, "gateway", "gateway", 45)  # more than a message holds
    blocked = tmp_path / "attachments"
    blocked.write_text("a file where the folder should be")
    async with open_console(bot_config, attachments=blocked) as console:
        reply = await console.run("/logs gateway --container gateway --tail 100")
        after = await console.run("/status gateway")
    assert re.match(r"gateway logs: \d+ lines from 3 pods", reply), reply
    assert re.search(r"^\[full output: not saved: File exists \(\d+ lines\)\]$", reply, re.M)
    assert "successfully rolled out" in after  # the console goes on


async def test_health_of_a_service_with_an_oomkilled_pod(
    sandbox: Sandbox, console: Console
) -> None:
    await eventually(lambda: "OOMKilled" in last_termination_reasons(sandbox, "scribe"))

    reply = await console.run("/health scribe")

    lines = reply.splitlines()
    assert re.match(r"[!✘] scribe: ", lines[0]), reply
    assert OOM_ADVICE in lines
    name = pods(sandbox, "scribe")[0]["metadata"]["name"]
    row = next(line for line in lines if line.startswith(name))
    assert re.search(r"  OOMKilled \(exit 137, \S+ ago\)  ", row), row
    header = next(line for line in lines if line.startswith("POD "))
    assert re.split(r"\s{2,}", header) == [
        "POD",
        "STATUS",
        "READY",
        "RESTARTS",
        "LAST TERMINATION",
        "AGE",
    ]
    described = await kubectl(sandbox.kubeconfig, "-n", NS, "describe", "pod", name)
    assert "Reason:       OOMKilled" in described.stdout


async def test_health_overview_names_a_hanging_service_with_or_without_the_aggregator(
    sandbox: Sandbox, bot_config: Config
) -> None:
    def running(app: str) -> bool:
        states = [
            status.get("state") or {}
            for pod in pods(sandbox, app)
            for status in (pod.get("status") or {}).get("containerStatuses") or []
        ]
        return bool(states) and all("running" in state for state in states)

    await eventually(lambda: running("test-dashboard") and running("registry-ui"))
    # the aggregator probes with 0.8 of the bot's timeout, in the test's event loop: 2 s leaves
    # it room to answer on a loaded machine
    through_aggregator = with_changes(bot_config, health={"probe_timeout_seconds": 2.0})
    without_aggregator = with_changes(through_aggregator, health={"aggregator_url": None})
    failed = "health check failed: dependency check returned an error"
    for config, expected in (
        # the aggregator's words
        (through_aggregator, [f"registry-ui: unhealthy ({failed})", "test-dashboard: timeout"]),
        # the bot probed each service itself
        (
            without_aggregator,
            [f"registry-ui: /health 503: {failed}", "test-dashboard: /health no answer within 2s"],
        ),
    ):
        async with open_console(config) as console:
            reply = await console.run("/health")

        lines = reply.splitlines()
        assert re.fullmatch(r"! holm: \d+ problems?", lines[0]), reply
        assert [line for line in lines if line in expected] == expected, reply
        assert "nodes: 13/13 ready" in lines


async def test_backups_created_listed_and_restored(sandbox: Sandbox, console: Console) -> None:
    started = await console.run("/backup create before-upgrade")
    match = re.fullmatch(r"Started backup (\S+) \(before-upgrade\)", started)
    assert match is not None, started
    backup_id = match.group(1)
    await console.wait()
    assert re.fullmatch(
        rf"\[{backup_id}\] ✔ backup {backup_id} \(before-upgrade\) completed: \S+ ?\S*",
        console.final(backup_id),
    ), console.text
    assert sandbox.backup.get_backup(backup_id).status == "completed"

    listing = (await console.run("/backup list")).splitlines()
    assert listing[0] == "1 backup"
    assert listing[1].split() == ["ID", "NAME", "STATUS", "SIZE", "AGE"]
    assert listing[2].split()[:3] == [backup_id, "before-upgrade", "completed"]

    # a restore needs an admin's approval (the sandbox's demo policy); the operator asks, bob
    # approves, and the restore then runs as the operator and is followed in the console
    asked = await console.run(f"/backup restore {backup_id}")
    match = re.search(r"\(request (\w+)\)", asked)
    assert match is not None, asked
    assert not sandbox.backup.list_restores()
    request = match.group(1)
    approved = await console.run(f"as console:bob: approve {request}")
    assert approved.splitlines() == [
        f"✔ request {request} approved by console:bob",
        f"running backup restore {backup_id} as console:operator",
    ]
    await console.wait()
    restoring = next(m for m in console.out.messages if m.startswith(f"Restoring {backup_id} "))
    match = re.fullmatch(rf"Restoring {re.escape(backup_id)} \((\S+)\)", restoring)
    assert match is not None, console.text
    restore_id = match.group(1)
    final = console.final(restore_id)
    assert final == f"[{restore_id}] ✔ restore of {backup_id} completed", console.text
    [restore] = sandbox.backup.list_restores()
    assert (restore.id, restore.backup_id, restore.status) == (restore_id, backup_id, "completed")

    unknown = await console.run("/backup restore no-such-backup")
    assert unknown.startswith("✘ ") and "no-such-backup" in unknown.splitlines()[0], unknown
    assert len(sandbox.backup.list_restores()) == 1
