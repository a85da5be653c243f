"""The real `holmbot console` process with commands piped in, as an operator scripts it."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path

import yaml

from sandbox.cluster import Sandbox
from tests.console.driver import (
    PROBE_TIMEOUT,
    current_image,
    deployment,
    image,
    rolled_out,
    wait_for_log_lines,
)

CHANGE_CAUSE = "kubernetes.io/change-cause"
PROCESS_LIMIT = 60.0  # seconds a console process may take


async def holmbot(*args: str, stdin: str, timeout: float = PROCESS_LIMIT) -> tuple[int, str, str]:
    """Run `holmbot ARGS` with `stdin` piped in (not a terminal); exit code, stdout, stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOLMBOT_")}
    process = await asyncio.create_subprocess_exec(
        "holmbot",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(stdin.encode()), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return process.returncode or 0, stdout.decode(), stderr.decode()


def operation_of(stdout: str, summary: str) -> str:
    """The operation id printed after the reply starting with `summary`."""
    match = re.search(rf"^{re.escape(summary)}\n(?:.+\n)*?operation: (\S+)$", stdout, re.M)
    assert match is not None, stdout
    return match.group(1)


def registry_processes_under(path: Path) -> list[str]:
    """Command lines of live processes that mention `path` (a leaked registry would)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(path) in cmdline:
            found.append(cmdline)
    return found


async def test_console_process_runs_piped_commands_against_a_running_sandbox(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    await wait_for_log_lines(sandbox, "gateway", "gateway", 45)  # more than a message holds
    config = yaml.safe_load(sandbox.bot_config_path.read_text())
    config["health"]["probe_timeout_seconds"] = PROBE_TIMEOUT
    config_path = tmp_path / "holmbot.yaml"
    config_path.write_text(yaml.safe_dump(config))
    script = (
        "/deploy nova v2\n"
        "as console:bob: /deploy pulse v1.1\n"
        "\n"
        "# comments and blank lines are skipped\n"
        "frobnicate\n"
        "/history pulse\n"
        "/health registry-ui\n"
        "/logs gateway --container gateway --tail 100\n"
    )  # no `wait`: at the end of input the console waits for tracked operations itself

    code, stdout, stderr = await holmbot(
        "console", "--config", str(config_path), "--as", "console:alice", stdin=script
    )

    assert code == 0, stderr
    assert "Traceback" not in stderr
    nova = operation_of(stdout, "Deploying nova:v2")
    pulse = operation_of(stdout, "Deploying pulse:v1.1")
    lines = stdout.splitlines()
    assert "change-cause: holmbot deploy nova:v2 by console:alice via console" in lines
    assert "change-cause: holmbot deploy pulse:v1.1 by console:bob via console" in lines
    assert any(line.startswith(f"[{nova}] ✔ deploy nova:v2 done: ") for line in lines), stdout
    assert any(line.startswith(f"[{pulse}] ✔ deploy pulse:v1.1 done: ") for line in lines)
    assert "✘ unknown command 'frobnicate'; try help" in lines
    assert "deployment.apps/pulse rollout history" in lines
    assert any(re.match(r"^[!✘] registry-ui: ", line) for line in lines), stdout
    assert any(line.startswith("/health: ") for line in lines), stdout
    # long logs: a preview in the reply, the whole text saved as a file
    folder = sandbox.state_dir / "bot" / "attachments"
    saved = re.search(
        rf"^\[full output: ({re.escape(str(folder))}/gateway-logs-[-\d]+\.txt) \((\d+) lines\)\]$",
        stdout,
        re.M,
    )
    assert saved is not None, stdout
    attachment = Path(saved.group(1))
    assert len(attachment.read_text().splitlines()) == int(saved.group(2)) >= 45

    assert current_image(sandbox, "nova") == image("nova", "v2")
    assert current_image(sandbox, "pulse") == image("pulse", "v1.1")
    assert rolled_out(sandbox, "nova") and rolled_out(sandbox, "pulse")
    assert deployment(sandbox, "nova")["metadata"]["annotations"][CHANGE_CAUSE] == (
        "holmbot deploy nova:v2 by console:alice via console"
    )


async def test_console_sandbox_works_on_a_fresh_machine() -> None:
    """`printf '/deploy nova v2\\n/health nova\\n' | holmbot console --sandbox`, bounded."""
    code, stdout, stderr = await holmbot(
        "console", "--sandbox", "--speed", "20", stdin="/deploy nova v2\n/health nova\n"
    )

    assert code == 0, stderr
    assert "Traceback" not in stderr
    lines = stdout.splitlines()
    match = re.fullmatch(r"sandbox running; kubectl: export KUBECONFIG=(\S+)", lines[0])
    assert match is not None, stdout
    nova = operation_of(stdout, "Deploying nova:v2")
    assert lines[-1].startswith(f'[{nova}] ✔ deploy nova:v2 done: deployment "nova" successfully')
    assert any(re.match(r"^(✔ |! )?nova: ", line) for line in lines), stdout
    assert any(line.startswith("/health: 200") for line in lines), stdout
    # the sandbox it started is gone with it: state directory and registry process
    state_dir = Path(match.group(1)).parent
    assert not state_dir.exists()
    assert registry_processes_under(state_dir) == []


async def test_unusable_kubeconfig_or_state_dir_is_a_clear_error_and_exit_2(
    tmp_path: Path,
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nclusters: [\n  - {name: x\n")  # not YAML
    (tmp_path / "a-file").write_text("")
    configs = {
        f"cannot load Kubernetes settings from kubeconfig {kubeconfig}: ": {
            "kubernetes": {"kubeconfig": str(kubeconfig)},
            "state_dir": str(tmp_path / "state"),
        },
        f"cannot use state file {tmp_path / 'a-file' / 'state' / 'holmbot.db'}: ": {
            "state_dir": str(tmp_path / "a-file" / "state"),
        },
    }
    for expected, config in configs.items():
        path = tmp_path / "holmbot.yaml"
        path.write_text(yaml.safe_dump(config))
        code, _, stderr = await holmbot("console", "--config", str(path), stdin="help\n")
        assert code == 2, stderr
        assert expected in stderr, stderr
        assert "Traceback" not in stderr


async def test_console_as_a_chat_user_is_refused_off_the_sandbox_and_audited(
    sandbox: Sandbox,
) -> None:
    config = str(sandbox.bot_config_path)
    code, stdout, stderr = await holmbot(
        "console", "--config", config, "--as", "slack:U0ADMIN", stdin="approve abcd\n"
    )
    assert code == 2
    assert "the console speaks only as console users, not as slack:U0ADMIN" in stderr
    assert "approve" not in stdout
    code, log, _ = await holmbot("audit", "--config", config, "--format", "json", stdin="")
    assert code == 0
    refused = [e for e in json.loads(log) if e["user"] == "slack:U0ADMIN"]
    assert [(e["command"], e["outcome"]) for e in refused] == [("--as slack:U0ADMIN", "refused")]
