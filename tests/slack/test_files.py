"""Long output: the message shows its newest lines within Slack's limits, and the whole goes up
as a file (files_upload_v2) in the message's thread."""

from __future__ import annotations

import json

from bot.slack.blocks import MAX_MESSAGE, MAX_SECTION
from sandbox.cluster import Sandbox
from sandbox.podlogs import ContainerLog
from tests.console.driver import NS, pods
from tests.fakes.slack import FakeSlack
from tests.polling import eventually
from tests.slack.conftest import ALICE, OPS, Bot

LINES = 400  # of about 100 bytes: 40 kB in all


def started_log(sandbox: Sandbox, app: str) -> ContainerLog | None:
    """The log a running container of `app` writes to, once one has started."""
    for pod in pods(sandbox, app):
        if not pod["metadata"].get("deletionTimestamp"):
            log = sandbox.kubelet.logs.current(NS, pod["metadata"]["name"], app)
            if log is not None:
                return log
    return None


async def test_a_40_kb_log_comes_as_a_file_with_its_last_lines_shown(
    bot: Bot, slack: FakeSlack, sandbox: Sandbox
) -> None:
    log = await eventually(lambda: started_log(sandbox, "nova"))
    written = [
        f"INFO request {i:05d} served in 12ms path=/api/v1/items?page={i} " + "x" * 40
        for i in range(LINES)
    ]
    log.write("\n".join(written))
    assert len("\n".join(written)) >= 40_000

    ack = await slack.ack_of(await slack.command("/logs", "nova --tail 1000", user=ALICE))
    assert ack["response_type"] == "in_channel"
    message = (await eventually(lambda: slack.posted(OPS)))[0]
    upload = (await eventually(lambda: slack.completed_uploads()))[0]
    await bot.idle()

    content = upload.content.decode()
    assert all(line in content for line in (written[0], written[-1]))
    assert len(upload.content) >= 40_000
    assert (upload.channel, upload.thread_ts) == (OPS, message.ts)
    # the message: the newest lines, and where the rest is, within Slack's limits
    assert written[-1] in message.shown
    assert written[0] not in message.shown
    assert f"are in {upload.filename}, uploaded in this message's thread" in message.shown
    sections = [b["text"]["text"] for b in message.blocks if "text" in b and b["type"] == "section"]
    assert max(len(text) for text in sections) <= MAX_SECTION
    assert len(json.dumps(message.blocks)) < MAX_MESSAGE + 5000  # text plus the JSON around it
    assert len(message.blocks) <= 50
