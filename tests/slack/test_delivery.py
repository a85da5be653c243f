"""Exactly once: a slash command or reaction Slack delivers again runs once, also when the
redelivery reaches a restarted bot on the same state file."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from bot.settings import BotConfig
from sandbox.cluster import Sandbox
from tests.console.driver import NS, audit_log
from tests.fakes.slack import FakeSlack
from tests.kubectl import kubectl
from tests.polling import eventually
from tests.slack.conftest import ALICE, BOB, OPS, running, slack_access
from tests.slack.test_approvals import APPROVE, request_message

Entries = list[dict[str, Any]]


async def replicas(sandbox: Sandbox, name: str) -> int:
    got = await kubectl(sandbox.kubeconfig, "-n", NS, "get", "deployment", name, "-o", "json")
    assert got.code == 0, got.stderr
    return json.loads(got.stdout)["spec"]["replicas"]


async def audit_until(config: BotConfig, done: Callable[[Entries], bool]) -> Entries:
    """The audit log, read again (bounded) until `done` says it holds what is awaited."""
    deadline = time.monotonic() + 10
    while not done(entries := await audit_log(config)):
        assert time.monotonic() < deadline, entries
        await asyncio.sleep(0.05)
    return entries


def duplicates(count: int) -> Callable[[Entries], bool]:
    return lambda entries: sum(e["outcome"] == "duplicate" for e in entries) >= count


async def test_a_redelivered_command_and_reaction_run_once_also_across_a_restart(
    bot_config: BotConfig, slack: FakeSlack, sandbox: Sandbox
) -> None:
    config = bot_config.model_copy(update={"access": slack_access(approvals=2)})
    async with running(config) as first:
        command = await slack.command("/holmbot", "scale nova 3", user=ALICE)
        assert (await slack.ack_of(command))["response_type"] == "in_channel"
        progress = (await eventually(lambda: slack.posted(OPS)))[0]
        await eventually(lambda: "*done* after" in progress.shown, timeout=60)
        assert await slack.ack_of(await slack.redeliver(command)) == {}  # a bare ack

        request = await request_message(slack)
        reaction = await slack.event(slack.reaction_event(BOB, request, APPROVE))
        await eventually(lambda: f"✓ <@{BOB}>" in request.shown)
        await slack.ack_of(await slack.redeliver(reaction))
        await audit_until(config, duplicates(2))
        await first.idle()
    posted, versions = len(slack.posted()), len(request.versions)

    async with running(config) as second:
        assert await slack.ack_of(await slack.redeliver(command)) == {}
        await slack.ack_of(await slack.redeliver(reaction))
        entries = await audit_until(config, duplicates(4))
        await second.idle()

    assert len(slack.posted()) == posted  # nothing said again
    assert len(request.versions) == versions  # the request message untouched
    assert slack.ephemerals == []
    assert await replicas(sandbox, "nova") == 3
    ran = [(e["action"], e["outcome"]) for e in entries if e["outcome"] != "duplicate"]
    assert ran.count(("scale", "ok")) == 1
    assert ran.count(("approve", "voted")) == 1
