"""Replies as Block Kit: within Slack's limits by slack-sdk's own validators, mentions and
escaping right, buttons that carry their commands; and how typed text becomes a command."""

from __future__ import annotations

import pytest
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.models.blocks import Block

from bot.metrics import Metrics
from bot.render.progress import progress_bar
from bot.slack.api import SlackApi
from bot.slack.blocks import MAX_BLOCKS, MAX_MESSAGE, render, size
from bot.slack.progress import progress_message
from bot.slack.slash import BY_NAME, mention_text
from commands.core.models import (
    Action,
    ActionStyle,
    Attachment,
    FinalResult,
    Phase,
    ProgressUpdate,
    Reply,
    ReplyField,
    Table,
    Tone,
)
from commands.core.parser import HelpCommand, help_reply

HUGE = Reply(
    title="x" * 200,
    tone=Tone.ERROR,
    lines=["l" * 5000] * 3 + [f"line {i}" for i in range(3000)],
    fields=[ReplyField(name="n" * 3000, value="v" * 3000)] * 40,
    actions=[Action(label="a" * 100, command=f"rollback nova {i}") for i in range(30)],
    table=Table(columns=["A", "B"], rows=[["r" * 4000, "s"]] * 100),
    attachment=Attachment(filename="all.txt", content="everything\n"),
)
REPLIES = {
    "help": help_reply(HelpCommand()),
    "huge": HUGE,
    "plain": Reply(title="nova is fine", tone=Tone.SUCCESS, lines=["3/3 ready"]),
}


@pytest.mark.parametrize("name", sorted(REPLIES))
def test_every_message_is_within_slacks_limits(name: str) -> None:
    rendered = render(REPLIES[name])
    for block in rendered.blocks:
        Block.parse(block).validate_json()  # type: ignore[union-attr]  # raises past a limit
    assert len(rendered.blocks) <= MAX_BLOCKS
    assert size(rendered.blocks) <= MAX_MESSAGE
    assert len(rendered.text) <= 3000


def test_what_does_not_fit_goes_to_a_file_and_the_buttons_stay() -> None:
    rendered = render(HUGE)
    assert rendered.file is not None and rendered.file.filename == "all.txt"
    lines = "\n".join(b["text"]["text"] for b in rendered.blocks if "text" in b).split("\n")
    assert "line 2999" in lines and "line 0" not in lines  # the newest lines
    assert "all.txt, uploaded in this message's thread" in str(rendered.blocks)
    buttons = [e for b in rendered.blocks if b["type"] == "actions" for e in b["elements"]]
    assert [b["value"] for b in buttons] == [a.command for a in HUGE.actions]
    assert len({b["action_id"] for b in buttons}) == len(buttons)
    private = render(HUGE, files=False)
    assert private.file is None and "lines not shown" in str(private.blocks)


def test_mentions_become_slack_mentions_and_text_is_escaped() -> None:
    reply = Reply(
        title="deploy nova v2 by <@slack:UALICE>",
        lines=["a < b & c > d", "<@discord:42> and <@slack:UBOB>"],
        table=Table(columns=["CMD"], rows=[["echo ```; <b>"]]),
        actions=[Action(label="Approve", command="approve k3x9", style=ActionStyle.PRIMARY)],
    )
    blocks = render(reply).blocks
    assert blocks[0] == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": ("*deploy nova v2 by <@UALICE>*")},
    }  # a header cannot mention
    assert blocks[1]["text"]["text"] == "a &lt; b &amp; c &gt; d\ndiscord:42 and <@UBOB>"
    code = blocks[2]["text"]["text"]
    assert code.startswith("```\n") and code.endswith("\n```") and code.count("```") == 2
    assert "&lt;b&gt;" in code
    assert blocks[-1]["elements"][0]["style"] == "primary"


async def test_the_client_has_the_configured_base_url_and_no_rate_limit_handler() -> None:
    api = SlackApi("xoxb-1", "https://slack-gov.com/api/", Metrics())
    client = await api.open()
    try:
        assert client.base_url == "https://slack-gov.com/api/"
        # 429s are waited out by the adapter alone (bot/slack/api.py), never twice
        assert not any(
            isinstance(h, AsyncRateLimitErrorRetryHandler) for h in client.retry_handlers
        )
    finally:
        await api.close()


@pytest.mark.parametrize(
    ("command", "typed", "text"),
    [
        ("/deploy", "nova v2", "deploy nova v2"),
        ("/backup", " create nightly ", "backup create nightly"),
        ("/holmbot", "scale nova 3", "scale nova 3"),
        ("/holmbot", "", "help"),
        ("/logs", "nova --grep a&amp;b", "logs nova --grep a&b"),
    ],
)
def test_a_slash_command_is_its_command_text(command: str, typed: str, text: str) -> None:
    assert BY_NAME[command].text(typed) == text


@pytest.mark.parametrize(
    ("said", "text"),
    [
        ("<@UHOLMBOT> deploy nova v2", "deploy nova v2"),
        ("<@UHOLMBOT|holmbot>: health", "health"),
        ("<@UHOLMBOT>", "help"),
    ],
)
def test_a_mention_is_the_text_after_it(said: str, text: str) -> None:
    assert mention_text(said) == text


def test_a_progress_message_shows_service_phase_bar_problems_and_elapsed_time() -> None:
    header = Reply(title="Deploying nova:v2", fields=[ReplyField(name="container", value="nova")])
    update = ProgressUpdate(
        operation_id="op-1",
        message='Waiting for deployment "nova" rollout to finish',
        service="nova",
        phase=Phase.PROGRESSING,
        seq=4,
        desired=4,
        updated=2,
        available=1,
        problems=[f"nova-7d9-{i}: CrashLoopBackOff" for i in range(12)],
    )
    rendered = progress_message(header, update, elapsed=75)
    for block in rendered.blocks:
        Block.parse(block).validate_json()  # type: ignore[union-attr]
    text = "\n".join(
        t
        for b in rendered.blocks
        for t in [b.get("text", {}).get("text", "")]
        + [f["text"] for f in b.get("fields", [])]
        + [e["text"] for e in b.get("elements", [])]
    )
    assert rendered.blocks[0]["text"]["text"] == ":warning: Deploying nova:v2"  # problems
    for shown in ("*Service*\nnova", "*Phase*\nprogressing", "*Elapsed*\n1m15s"):
        assert shown in text, text
    assert "*Replicas*\n2 updated, 1 available of 4" in text
    assert f"`{progress_bar(1, 4)}`" in text  # both updated and available
    assert ":warning: nova-7d9-9: CrashLoopBackOff" in text and "and 2 more" in text
    assert "nova-7d9-10" not in text
    final = FinalResult(
        operation_id="op-1",
        ok=False,
        service="nova",
        message="deploy nova:v2 failed",
        duration_seconds=12,
        reason="CrashLoopBackOff",
    )
    done = progress_message(header, final, elapsed=12)
    assert done.blocks[0]["text"]["text"] == ":x: Deploying nova:v2"
    assert "*failed* after 12s (CrashLoopBackOff)" in str(done.blocks)
    assert not any(b["type"] == "actions" for b in done.blocks)  # actions go in the thread
