"""Deploy, rollback and history typed into the console, against the running sandbox.

Each test asserts what the user sees (the printed reply and progress lines) and what changed
in the cluster (the sandbox's store, and the real kubectl where an operator would compare).
"""

from __future__ import annotations

import re

from sandbox.cluster import Sandbox
from sandbox.resources import DEPLOYMENTS, REPLICASETS
from tests.console.driver import (
    NS,
    Console,
    crash_looping,
    current_image,
    deployment,
    desired_state,
    image,
    new_pod_prefix,
    operation_id,
    pods,
    rolled_out,
)
from tests.kubectl import kubectl
from tests.polling import eventually

CHANGE_CAUSE = "kubernetes.io/change-cause"


async def kubectl_history(sandbox: Sandbox, name: str) -> list[tuple[int, str]]:
    """`kubectl rollout history` as (revision, change-cause) rows."""
    result = await kubectl(sandbox.kubeconfig, "-n", NS, "rollout", "history", f"deploy/{name}")
    assert result.code == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[1].split() == ["REVISION", "CHANGE-CAUSE"], result.stdout
    return [
        (int(number), cause.strip()) for number, cause in (ln.split(None, 1) for ln in lines[2:])
    ]


def history_rows(reply: str) -> list[list[str]]:
    """The rows of the console's history table: REVISION, IMAGE, CHANGE-CAUSE, AGE."""
    lines = reply.splitlines()
    header = lines.index(next(line for line in lines if line.startswith("REVISION ")))
    assert re.split(r"\s{2,}", lines[header]) == ["REVISION", "IMAGE", "CHANGE-CAUSE", "AGE"]
    return [re.split(r"\s{2,}", line) for line in lines[header + 1 :] if not line.endswith("kept")]


def as_kubectl(rows: list[list[str]]) -> list[tuple[int, str]]:
    return [(int(row[0].split()[0]), row[2]) for row in rows]


async def test_deploy_completes_with_progress_lines(sandbox: Sandbox, console: Console) -> None:
    reply = await console.run("/deploy nova v2")

    assert reply.splitlines()[:4] == [
        "Deploying nova:v2",
        "container: nova",
        f"image: {image('nova', 'v1.1')} → {image('nova', 'v2')}",
        "change-cause: holmbot deploy nova:v2 by console:operator via console",
    ]
    op = operation_id(reply)
    await console.wait()
    lines = console.progress(op)
    waiting = f'[{op}] Waiting for deployment "nova" rollout to finish: '
    assert any(line.startswith(waiting) for line in lines[:-2]), console.text
    assert lines[-2].startswith(f'[{op}] deployment "nova" successfully rolled out')
    assert re.fullmatch(
        rf'\[{op}\] ✔ deploy nova:v2 done: deployment "nova" successfully rolled out \(\d+\.\ds\)',
        lines[-1],
    )
    assert current_image(sandbox, "nova") == image("nova", "v2")
    assert rolled_out(sandbox, "nova")
    status = await kubectl(sandbox.kubeconfig, "-n", NS, "rollout", "status", "deploy/nova")
    assert status.stdout.strip() == 'deployment "nova" successfully rolled out'
    live = [p for p in pods(sandbox, "nova") if not p["metadata"].get("deletionTimestamp")]
    assert {p["spec"]["containers"][0]["image"] for p in live} == {image("nova", "v2")}


async def test_deploy_of_a_missing_tag_is_refused_before_any_change(
    sandbox: Sandbox, console: Console
) -> None:
    before = desired_state(sandbox, "nova")
    replicasets = len(sandbox.store.list(REPLICASETS, NS))

    reply = await console.run("/deploy nova v9.9")

    assert reply == (
        "✘ nova:v9.9 is not in the registry; nothing was changed\n"
        "newest tags: v3, v2, v2-broken, v1.1, v1"
    )
    assert desired_state(sandbox, "nova") == before
    assert len(sandbox.store.list(REPLICASETS, NS)) == replicasets
    status = await console.run("/status nova")
    assert "running:" not in status  # nothing is being tracked
    assert [n for n, _ in await kubectl_history(sandbox, "nova")] == [1, 2]


async def test_a_crash_looping_deploy_is_rolled_back_automatically_and_says_why(
    sandbox: Sandbox, console: Console
) -> None:
    reply = await console.run("deploy nova v2-broken")
    op = operation_id(reply)
    await console.wait()

    lines = console.progress(op)
    crashing = crash_looping(new_pod_prefix(sandbox, "nova", image("nova", "v2-broken")))
    fired = f"[{op}] ✘ deploy nova:v2-broken failed: rollback trigger fired: "
    final = lines[-1]
    rolled_back = f"rolled back to revision 2 ({image('nova', 'v1.1')}) (now revision 4)"
    found = re.fullmatch(
        re.escape(fired + "100% of new pods failing (")
        + f"(?P<pod>.+?)\\); {re.escape(rolled_back)}; .+",
        final.splitlines()[0],
    )
    assert found is not None, console.text
    assert crashing.fullmatch(found["pod"]), final
    assert any(line.endswith("; rolling back to revision 2") for line in lines[:-1])
    printed = [line for message in lines for line in message.splitlines()]
    problems = [line.removeprefix(f"[{op}]   ! ") for line in printed if f"[{op}]   ! " in line]
    assert any(crashing.fullmatch(problem) for problem in problems), problems
    assert current_image(sandbox, "nova") == image("nova", "v1.1")
    assert rolled_out(sandbox, "nova")
    assert [n for n, _ in await kubectl_history(sandbox, "nova")] == [1, 3, 4]
    status = await console.run("status nova")
    assert status.startswith('✔ deployment "nova" successfully rolled out\n')
    assert "revision: 4" in status.splitlines()
    assert f"image: {image('nova', 'v1.1')}" in status.splitlines()


async def test_rollback_to_a_named_revision_and_the_history_kubectl_shows(
    sandbox: Sandbox, console: Console
) -> None:
    history = await console.run("/rollback nova history")
    assert history.splitlines()[0] == "deployment.apps/nova rollout history"
    assert as_kubectl(history_rows(history)) == await kubectl_history(sandbox, "nova")

    reply = await console.run("/rollback nova 1")

    assert reply.splitlines()[:2] == [
        "deployment.apps/nova rolled back to revision 1",
        f"image: {image('nova', 'v1')}",
    ]
    op = operation_id(reply)
    await console.wait()
    assert console.final(op).startswith(f"[{op}] ✔ rollback nova to revision 1 done: ")
    assert current_image(sandbox, "nova") == image("nova", "v1")
    assert rolled_out(sandbox, "nova")

    history = await console.run("/history nova")
    rows = history_rows(history)
    assert as_kubectl(rows) == await kubectl_history(sandbox, "nova")
    assert [row[:2] for row in rows] == [
        ["2", image("nova", "v1.1")],
        ["3 (current)", image("nova", "v1")],
    ]
    assert history.splitlines()[-1] == (
        "maximum rollback depth: 10 (revisionHistoryLimit), 1 earlier revision kept"
    )
    assert (
        deployment(sandbox, "nova")["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        == "3"
    )

    # kubectl's own words when there is nothing to do, or no such revision
    before = desired_state(sandbox, "nova")
    skipped = await console.run("/rollback nova 3")
    kubectl_skip = await kubectl(
        sandbox.kubeconfig, "-n", NS, "rollout", "undo", "deploy/nova", "--to-revision=3"
    )
    assert skipped.splitlines()[0] == kubectl_skip.stdout.strip()
    missing = await console.run("/rollback nova 1")
    kubectl_missing = await kubectl(
        sandbox.kubeconfig, "-n", NS, "rollout", "undo", "deploy/nova", "--to-revision=1"
    )
    assert missing.splitlines() == [
        "✘ unable to find specified revision 1 in history",
        "revisions kept: 2, 3",
    ]
    assert kubectl_missing.stderr.strip() == "error: unable to find specified revision 1 in history"
    assert desired_state(sandbox, "nova") == before


async def test_two_services_deployed_at_once_each_tracked_to_its_end_with_who_asked(
    sandbox: Sandbox, console: Console
) -> None:
    nova = await console.run("as console:alice: deploy nova v2")
    pulse = await console.run("as console:bob: /deploy pulse v1.1")
    busy = await console.run("deploy nova v3")

    nova_op, pulse_op = operation_id(nova), operation_id(pulse)
    assert "change-cause: holmbot deploy nova:v2 by console:alice via console" in nova
    assert "change-cause: holmbot deploy pulse:v1.1 by console:bob via console" in pulse
    assert re.fullmatch(
        rf"! nova is busy: deploy nova:v2 started by console:alice via console \S+ ago "
        rf"is still running \({nova_op}\); try again when it has finished",
        busy,
    )
    await console.wait()

    nova_final, pulse_final = console.final(nova_op), console.final(pulse_op)
    assert nova_final.startswith(f'[{nova_op}] ✔ deploy nova:v2 done: deployment "nova" succ')
    assert pulse_final.startswith(f'[{pulse_op}] ✔ deploy pulse:v1.1 done: deployment "pulse" ')
    assert all('"pulse"' not in line for line in console.progress(nova_op))
    assert all('"nova"' not in line for line in console.progress(pulse_op))
    # both were followed at the same time: each printed progress before the other ended
    messages = console.out.messages
    first = {op: messages.index(console.progress(op)[0]) for op in (nova_op, pulse_op)}
    last = {op: messages.index(console.final(op)) for op in (nova_op, pulse_op)}
    assert first[pulse_op] < last[nova_op] and first[nova_op] < last[pulse_op], console.text

    assert current_image(sandbox, "nova") == image("nova", "v2")
    assert current_image(sandbox, "pulse") == image("pulse", "v1.1")
    assert rolled_out(sandbox, "nova") and rolled_out(sandbox, "pulse")
    causes = {
        name: deployment(sandbox, name)["metadata"]["annotations"][CHANGE_CAUSE]
        for name in ("nova", "pulse")
    }
    assert causes == {
        "nova": "holmbot deploy nova:v2 by console:alice via console",
        "pulse": "holmbot deploy pulse:v1.1 by console:bob via console",
    }
    assert (await kubectl_history(sandbox, "nova"))[-1] == (3, causes["nova"])
    assert (await kubectl_history(sandbox, "pulse"))[-1] == (4, causes["pulse"])


async def test_help_malformed_input_and_unknown_services(
    sandbox: Sandbox, console: Console
) -> None:
    await eventually(lambda: all(rolled_out(sandbox, n) for n in ("nova", "gateway")))
    before = {
        d["metadata"]["name"]: desired_state(sandbox, d["metadata"]["name"])
        for d in sandbox.store.list(DEPLOYMENTS, NS)
    }

    overview = (await console.run("help")).splitlines()
    assert overview[:2] == ["holmbot commands", "help COMMAND for one command"]
    for usage in (
        "deploy SERVICE [TAG] [--container C]: ",
        "logs SERVICE [--tail N] [--previous] [--container C] [--since DURATION] [--grep TEXT]: ",
        "rollback SERVICE [REVISION]: ",
        "rollback SERVICE history: ",
        "backup create [NAME]: ",
        "backup list: ",
        "backup restore ID: ",
        "health [SERVICE]: ",
    ):
        assert any(line.startswith(usage) for line in overview), usage
    assert (await console.run("/help deploy")).splitlines()[:2] == [
        "help: deploy",
        "deploy SERVICE [TAG] [--container C]",
    ]

    usage = "usage: deploy SERVICE [TAG] [--container C]"
    expected = {
        "/deploy": ["✘ deploy: missing SERVICE", usage],
        "deploy nova v2 now": ["✘ deploy: unexpected argument 'now'", usage],
        "deploy Nova v2": [
            "✘ deploy: 'Nova' is not a valid service name (did you mean nova?): lowercase "
            "letters, digits and '-', starting and ending with a letter or digit, "
            "at most 63 characters",
            usage,
        ],
        "deploy nova v2!": [
            "✘ deploy: 'v2!' is not a valid image tag: letters, digits, '_', '.' and '-', "
            "not starting with '.' or '-', at most 128 characters",
            usage,
        ],
        'deploy "nova v2': ["✘ cannot read the command: No closing quotation (check the quotes)"],
        "deploi nova v2": ["✘ unknown command 'deploi' (did you mean deploy?); try help"],
        "logs nova --tail lots": [
            "✘ logs: --tail must be a whole number from 1 to 5000, got 'lots'",
            "usage: logs SERVICE [--tail N] [--previous] [--container C] [--since DURATION] "
            "[--grep TEXT]",
        ],
        "backup": [
            "✘ backup needs a subcommand",
            "usage: backup create [NAME]",
            "usage: backup list",
            "usage: backup restore ID",
        ],
        "as nobody: help": ["✘ users are written PLATFORM:ID (slack, discord, console): 'nobody'"],
        "deploy nvoa v2": ['✘ no service "nvoa" in namespace holm', "did you mean nova?"],
        "rollback gatewya": ['✘ no service "gatewya" in namespace holm', "did you mean gateway?"],
        "logs scrib": ["! No pods with app=scrib in namespace holm", "did you mean scribe?"],
    }
    for line, lines in expected.items():
        assert (await console.run(line)).splitlines() == lines, line
    unknown_health = await console.run("health pulsee")
    assert unknown_health.startswith("✘ ") and "did you mean pulse?" in unknown_health

    assert "Traceback" not in console.text
    assert not any(m.startswith("[op-") for m in console.out.messages)  # nothing was started
    after = {
        d["metadata"]["name"]: desired_state(sandbox, d["metadata"]["name"])
        for d in sandbox.store.list(DEPLOYMENTS, NS)
    }
    assert after == before


async def test_restart_scale_and_a_service_with_a_sidecar(
    sandbox: Sandbox, console: Console
) -> None:
    before = {p["metadata"]["name"] for p in pods(sandbox, "holmos-shell")}
    envoy = deployment(sandbox, "gateway")["spec"]["template"]["spec"]["containers"][1]

    restart = await console.run("/deploy holmos-shell")  # no tag: a rollout restart
    gateway = await console.run("/deploy gateway v2.2.0")
    sidecar_logs = await console.run("/logs gateway")
    await console.wait()

    assert restart.splitlines()[0] == "Restarting holmos-shell"
    assert "change-cause: holmbot restart holmos-shell by console:operator via console" in restart
    assert "container: gateway" in gateway.splitlines()  # the one named like the service
    assert sidecar_logs.splitlines() == [
        "! These pods have 2 containers; pick one with --container",
        "containers: gateway, envoy",
    ]
    for reply, done in ((restart, "restart holmos-shell"), (gateway, "deploy gateway:v2.2.0")):
        op = operation_id(reply)
        assert console.final(op).startswith(f"[{op}] ✔ {done} done: "), console.text
    template = deployment(sandbox, "holmos-shell")["spec"]["template"]
    assert "kubectl.kubernetes.io/restartedAt" in template["metadata"]["annotations"]
    assert rolled_out(sandbox, "holmos-shell")
    await eventually(
        lambda: not before & {p["metadata"]["name"] for p in pods(sandbox, "holmos-shell")}
    )
    containers = deployment(sandbox, "gateway")["spec"]["template"]["spec"]["containers"]
    assert [c["image"] for c in containers] == [image("gateway", "v2.2.0"), envoy["image"]]
    assert containers[1] == envoy

    scale = await console.run("/scale holmos-shell 3")
    assert scale.splitlines()[0] == "Scaling holmos-shell from 2 to 3 replicas"
    op = operation_id(scale)
    await console.wait()
    assert console.final(op).startswith(f"[{op}] ✔ scale holmos-shell to 3 done: ")
    table = await kubectl(sandbox.kubeconfig, "-n", NS, "get", "deploy", "holmos-shell")
    assert table.stdout.splitlines()[1].split()[1:4] == ["3/3", "3", "3"]
    same = await console.run("/scale holmos-shell 3")
    assert same == "holmos-shell already has 3 replicas; nothing to do"
