"""`holmbot run` as a process: its start-up errors, its probes, its logs, its stop and its lock."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sandbox.cluster import Sandbox
from tests.fakes.slack import APP_TOKEN, BOT_TOKEN, FakeSlack
from tests.polling import eventually

STOP_SECONDS = 10.0  # what the Deployment's terminationGracePeriodSeconds allows


def base_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOLMBOT_")}
    return {**env, **extra}


class Process:
    """A running `holmbot run`, its stderr lines collected as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            self.lines.append(raw.decode().rstrip("\n"))

    def logged(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines if line.startswith("{")]

    async def port(self) -> int:
        def bound() -> int | None:
            if self.proc.returncode is not None:
                raise AssertionError("holmbot run exited:\n" + "\n".join(self.lines))
            for line in self.logged():
                if line["message"].startswith("probes listening on port "):
                    return int(line["message"].rsplit(" ", 1)[1])
            return None

        return await eventually(bound, timeout=60)

    async def stop(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.proc.wait(), STOP_SECONDS)
        await self._reader
        return code


@asynccontextmanager
async def started(env: dict[str, str]) -> AsyncIterator[Process]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "run", env=base_env(env), stderr=asyncio.subprocess.PIPE
    )
    process = Process(proc)
    try:
        yield process
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack().start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
def slack_env(sandbox: Sandbox, slack: FakeSlack, tmp_path: Path) -> dict[str, str]:
    return {
        "HOLMBOT_CONFIG": str(sandbox.bot_config_path),
        "HOLMBOT_STATE_DIR": str(tmp_path / "state"),
        "HOLMBOT_PROBES__HOST": "127.0.0.1",
        "HOLMBOT_PROBES__PORT": "0",
        "HOLMBOT_PROBES__KUBERNETES_STALE_SECONDS": "1.5",
        "HOLMBOT_SLACK__BOT_TOKEN": BOT_TOKEN,
        "HOLMBOT_SLACK__APP_TOKEN": APP_TOKEN,
        "HOLMBOT_SLACK__API_URL": slack.api_url,
    }


async def ready(port: int) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(f"http://127.0.0.1:{port}/ready")


async def test_without_chat_credentials_it_exits_2_naming_the_settings(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "run",
        env=base_env({"HOLMBOT_STATE_DIR": str(tmp_path)}),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode == 2
    message = err.decode()
    for name in (
        "HOLMBOT_SLACK__BOT_TOKEN",
        "HOLMBOT_SLACK__APP_TOKEN",
        "HOLMBOT_DISCORD__TOKEN",
        "HOLMBOT_DISCORD__GUILD_ID",
    ):
        assert name in message
    assert "holmbot console --sandbox" in message
    assert not (tmp_path / "holmbot.db").exists()  # nothing started


async def test_a_secret_in_the_config_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "holmbot.yaml"
    config.write_text("slack:\n  bot_token: xoxb-1234-5678-abcdefgh\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "run", "--config", str(config),
        env=base_env({}), stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert "slack.bot_token is a secret" in err.decode()
    assert "xoxb-1234-5678-abcdefgh" not in err.decode()


async def test_probes_readiness_metrics_logs_stop_and_lock(
    slack_env: dict[str, str], slack: FakeSlack, sandbox: Sandbox, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "slack__app_token").write_text(slack_env.pop("HOLMBOT_SLACK__APP_TOKEN") + "\n")
    slack_env["HOLMBOT_SECRETS_DIR"] = str(secrets)  # the app token comes from a file
    async with started(slack_env) as bot:
        port = await bot.port()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/health")).status_code == 200
            await eventually_ready(client)

            # a slash command, counted in /metrics
            await slack.ack_of(await slack.command("/health", "", user="UALICE"))

            async def counted() -> float:
                text = (await client.get("/metrics")).text
                return sum(
                    sample.value
                    for family in text_string_to_metric_families(text)
                    if family.name == "holmbot_commands"
                    for sample in family.samples
                    if sample.name == "holmbot_commands_total"
                    and sample.labels.get("command") == "health"
                )

            await eventually_async(counted)

            # a second bot on the same state directory refuses to start
            second = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot.cli", "run",
                env=base_env(slack_env | {"HOLMBOT_SLACK__APP_TOKEN": APP_TOKEN}),
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            _, err = await second.communicate()
            assert second.returncode == 2
            assert "another holmbot is running on" in err.decode()

            # the Kubernetes API goes away: /ready says so
            await sandbox.stop()
            gone = await eventually_async(lambda: not_ready(client), timeout=30)
            assert gone["parts"]["kubernetes"]["ready"] is False
            assert gone["parts"]["slack"]["ready"] is True

        assert await bot.stop() == 0
    everything = "\n".join(bot.lines)
    assert BOT_TOKEN not in everything and APP_TOKEN not in everything
    assert all(line.startswith("{") for line in bot.lines if line)  # JSON lines only
    assert {"time", "level", "logger", "message"} <= set(bot.logged()[0])
    assert bot.logged()[-1]["message"] == "stopped"


async def eventually_async(check: Any, timeout: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := await check()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.1)
    return result


async def eventually_ready(client: httpx.AsyncClient) -> dict[str, Any]:
    async def ok() -> dict[str, Any] | None:
        answer = await client.get("/ready")
        return answer.json() if answer.status_code == 200 else None

    body = await eventually_async(ok, timeout=60)
    assert set(body["parts"]) == {"state", "kubernetes", "slack"}
    return body


async def not_ready(client: httpx.AsyncClient) -> dict[str, Any] | None:
    answer = await client.get("/ready")
    return answer.json() if answer.status_code == 503 else None
