"""The process's parts on their own: the log redaction filter, the lazy imports, and the
adapters' starts."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys

import pytest

from bot.adapter import AdapterStatus
from bot.logs import REDACTED, setup_logging
from bot.run import _start_all

DISCORD_SHAPED = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.abcdefghijklmnopqrstuvwxyz0123"


def test_secrets_and_token_shapes_are_redacted_everywhere_in_a_line() -> None:
    out = io.StringIO()
    setup_logging("INFO", ["hunter2-signing-secret"], out)
    log = logging.getLogger("holmbot.test")
    log.info("signing with %s", "hunter2-signing-secret", extra={"user": "slack:U1"})
    log.warning("token xoxb-111-222-abcdefgh and %s in a message", DISCORD_SHAPED)
    try:
        raise RuntimeError("auth failed for xapp-1-A111-222-abcdef")
    except RuntimeError:
        log.exception("slack said no")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    text = out.getvalue()
    for secret in ("hunter2-signing-secret", "xoxb-111", "xapp-1-A111", DISCORD_SHAPED):
        assert secret not in text
    assert lines[0]["message"] == f"signing with {REDACTED}"
    assert lines[0]["user"] == "slack:U1"
    assert lines[1]["message"] == f"token {REDACTED} and {REDACTED} in a message"
    assert "RuntimeError: auth failed for [redacted]" in lines[2]["error"]
    assert {line["level"] for line in lines} == {"INFO", "WARNING", "ERROR"}


def test_a_slack_only_bot_never_imports_discord_or_the_sandbox() -> None:
    code = (
        "import sys, bot.run, bot.slack.adapter, bot.probes, bot.cli;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'discord', 'sandbox'}))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "[]"


class Starting:
    """An adapter whose start waits for `until` (after setting `began`), then fails or not."""

    def __init__(self, until: asyncio.Event, failure: Exception | None = None) -> None:
        self.began, self.until, self.failure = asyncio.Event(), until, failure
        self.started = self.cancelled = False

    async def start(self) -> None:
        self.began.set()
        try:
            await self.until.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        if self.failure is not None:
            raise self.failure
        self.started = True

    async def close(self) -> None:
        pass

    def status(self) -> AdapterStatus:
        return AdapterStatus(connected=self.started, handlers_registered=True)


async def test_the_adapters_start_at_once() -> None:
    # each start waits for the other's to have begun: started one after the other, neither ends
    slack_began, discord_began = asyncio.Event(), asyncio.Event()
    slack, discord = Starting(discord_began), Starting(slack_began)
    slack.began, discord.began = slack_began, discord_began
    await asyncio.wait_for(_start_all({"slack": slack, "discord": discord}), 30)
    assert slack.started and discord.started


async def test_one_failing_start_cancels_the_others_and_is_raised_as_it_was() -> None:
    never = asyncio.Event()
    refused = RuntimeError("Slack refused the bot token")
    go = asyncio.Event()
    slack, discord = Starting(go, refused), Starting(never)
    starting = asyncio.ensure_future(_start_all({"slack": slack, "discord": discord}))
    await slack.began.wait()
    await discord.began.wait()
    go.set()
    with pytest.raises(RuntimeError) as raised:
        await starting
    assert raised.value is refused
    assert discord.cancelled and not discord.started
