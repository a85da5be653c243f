"""`holmbot sandbox` as a person runs it: files written, kubectl works, SIGTERM stops all."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import yaml

from tests.kubectl import kubectl


async def test_holmbot_sandbox_runs_and_stops_everything_it_started(tmp_path: Path) -> None:
    state = tmp_path / "holm"
    process = await asyncio.create_subprocess_exec(
        "holmbot",
        "sandbox",
        "--state-dir",
        str(state),
        "--speed",
        "20",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=os.environ.copy(),
    )
    assert process.stdout is not None
    printed: list[str] = []
    async with asyncio.timeout(60):
        while not printed or not printed[-1].startswith("Stop with"):
            printed.append(await read_line(process))
    try:
        assert f"export KUBECONFIG={state / 'kubeconfig'}" in printed
        endpoints = json.loads((state / "endpoints.json").read_text())
        assert {"kubernetes", "registry", "backup", "health_aggregator"} <= endpoints.keys()
        bot_config = yaml.safe_load((state / "holmbot.yaml").read_text())
        assert bot_config["registry"]["url"] == endpoints["registry"]
        nodes = await kubectl(state / "kubeconfig", "get", "nodes", "--no-headers")
        assert len(nodes.stdout.splitlines()) == 13
        registry_config = str(state / "registry" / "config.yml")
        assert registry_config in _processes()
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            code = await process.wait()
    assert code == 0
    assert registry_config not in _processes()


async def read_line(process: asyncio.subprocess.Process) -> str:
    """The next line the process prints; fails with its stderr when it has exited instead."""
    assert process.stdout is not None and process.stderr is not None
    line = await process.stdout.readline()
    if not line:
        await process.wait()
        stderr = (await process.stderr.read()).decode(errors="replace")
        raise AssertionError(f"exited with {process.returncode} before printing that:\n{stderr}")
    return line.decode().rstrip()


def _processes() -> str:
    """Every running process's command line, one a line."""
    lines = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            lines.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue  # the process ended meanwhile
    return "\n".join(lines)


async def test_sigterm_stops_the_console_and_its_sandbox(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        "holmbot",
        "console",
        "--sandbox",
        "--speed",
        "20",
        stdin=asyncio.subprocess.PIPE,  # left open: the console is waiting for more input
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert process.stdin is not None and process.stdout is not None
    async with asyncio.timeout(60):
        first = await read_line(process)
        kubeconfig = Path(first.rsplit("KUBECONFIG=", 1)[1].strip())
        process.stdin.write(b"help backup\n")
        await process.stdin.drain()
        while "backup create" not in await read_line(process):
            pass
    registry_config = str(kubeconfig.parent / "registry" / "config.yml")
    assert registry_config in _processes()
    process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(30):
        code = await process.wait()
    assert code == 143
    assert registry_config not in _processes()
    assert not kubeconfig.parent.exists()
