"""Live progress: one message per operation, edited at most once a second through 429s to its
final state, the result in its thread; after a restart the same message goes on."""

from __future__ import annotations

import itertools
import json

from bot.settings import BotConfig
from sandbox.cluster import Sandbox
from tests.console.driver import NS, audit_log, current_image, image, with_changes
from tests.fakes.slack import Call, FakeSlack, Message
from tests.kubectl import kubectl
from tests.polling import eventually
from tests.slack.conftest import ALICE, OPS, running

INTERVAL = 1.0  # Slack: about one edit per second per message
SLACK_JITTER = 0.1  # the fake stamps arrival; sends can arrive this much closer together


async def deployment(sandbox: Sandbox, name: str) -> dict:
    """The Deployment as the Kubernetes API serves it (kubectl get -o json)."""
    got = await kubectl(sandbox.kubeconfig, "-n", NS, "get", "deployment", name, "-o", "json")
    assert got.code == 0, got.stderr
    return json.loads(got.stdout)


def rolled_out(live: dict) -> bool:
    status, replicas = live.get("status") or {}, live["spec"]["replicas"]
    return (
        status.get("observedGeneration") == live["metadata"]["generation"]
        and status.get("updatedReplicas") == replicas
        and status.get("availableReplicas") == replicas
    )


def touches(slack: FakeSlack, message: Message) -> list[Call]:
    """The post of a message and every chat.update of it (answered or 429), in order."""
    post = next(c for c in slack.calls_of("chat.postMessage") if c.at <= message.versions[0]["at"])
    updates = [c for c in slack.calls_of("chat.update") if c.args.get("ts") == message.ts]
    return [post, *updates]


async def test_a_deploy_is_edited_to_its_end_through_429s_at_most_once_a_second(
    bot_config: BotConfig, slack: FakeSlack, sandbox: Sandbox
) -> None:
    slack.limit("chat.update", share=0.3, retry_after=1)
    config = with_changes(bot_config, rollout={"verify_seconds": 3.0})  # a few seconds' work
    async with running(config) as bot:
        ack = await slack.ack_of(await slack.command("/deploy", "nova v2", user=ALICE))
        assert ack["response_type"] == "in_channel"
        progress = (await eventually(lambda: slack.posted(OPS)))[0]
        await bot.idle()

    assert progress.blocks[0]["text"]["text"] == ":white_check_mark: Deploying nova:v2"
    final = progress.shown
    assert "*done* after" in final and 'deployment "nova" successfully rolled out' in final
    assert f"{image('nova', 'v1.1')} → {image('nova', 'v2')}" in final
    assert progress.buttons == []
    # it went through its phases in the one message: service, phase and the bar
    shown = [json.dumps(v["blocks"], ensure_ascii=False) for v in progress.versions]
    assert any("*Phase*" in s and "▰" in s and "*Service*\\nnova" in s for s in shown), shown
    # at most one touch a second, 429s included, and every 429 was waited out
    calls = touches(slack, progress)
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(calls)]
    assert gaps and min(gaps) >= INTERVAL - SLACK_JITTER, gaps
    limited = [c for c in calls if c.status == 429]
    assert limited, "the fake answered no chat.update with 429"
    assert calls[-1].status == 200  # the final state went out
    assert bot.metric(
        "holmbot_chat_rate_limited_total", platform="slack", method="chat.update"
    ) == len(limited)
    # the result in the message's thread, for the requester
    result = slack.replies(progress.ts)
    assert len(result) == 1 and f"<@{ALICE}>" in result[0].shown
    assert "done" in result[0].shown
    assert len(slack.posted(OPS)) == 2  # the progress message and its threaded result
    # the cluster, as the Kubernetes API has it
    live = await deployment(sandbox, "nova")
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == image("nova", "v2")
    assert rolled_out(live)


async def test_after_a_restart_the_operation_goes_on_in_the_same_message(
    bot_config: BotConfig, slack: FakeSlack, sandbox: Sandbox
) -> None:
    config = with_changes(bot_config, rollout={"verify_seconds": 3.0})  # long enough to stop in
    async with running(config) as first:
        await slack.ack_of(await slack.command("/deploy", "gateway v2.2.0", user=ALICE))
        progress = (await eventually(lambda: slack.posted(OPS)))[0]
        await eventually(lambda: len(progress.versions) >= 2)  # it is under way
    assert "*done* after" not in progress.shown  # stopped before its end
    stopped_at = len(progress.versions)

    async with running(config) as second:
        await eventually(lambda: "following deploy gateway:v2.2.0 again" in progress.shown)
        await eventually(lambda: "*done* after" in progress.shown, timeout=60)
        await second.idle()

    assert len(progress.versions) > stopped_at
    assert [m.ts for m in slack.posted(OPS) if m.thread_ts is None] == [progress.ts]
    result = slack.replies(progress.ts)
    assert len(result) == 1 and f"<@{ALICE}>" in result[0].shown
    assert rolled_out(await deployment(sandbox, "gateway"))
    deploys = [e for e in await audit_log(config) if e["action"] == "deploy"]
    assert [e["outcome"] for e in deploys] == ["ok"]
    assert first.adapter.status().connected is False  # closed


async def test_a_crash_looping_deploy_fails_in_its_message_and_asks_to_roll_back(
    bot_config: BotConfig, slack: FakeSlack, sandbox: Sandbox
) -> None:
    config = with_changes(bot_config, rollout={"auto_rollback": "approve"})
    async with running(config) as bot:
        await slack.ack_of(await slack.command("/deploy", "nova v2-broken", user=ALICE))
        progress = (await eventually(lambda: slack.posted(OPS)))[0]
        question = await eventually(
            lambda: [m for m in slack.posted(OPS) if "Roll nova back to revision 2?" in m.shown],
            timeout=60,
        )
        await eventually(lambda: progress.blocks[0]["text"]["text"].startswith(":x: "))
        assert "*failed* after" in progress.shown
        result = await eventually(lambda: slack.replies(progress.ts))
        assert [b["text"]["text"] for b in result[0].buttons] == ["Logs"]
        # the question is a request message like any other: a reaction approves it
        request = question[0]
        assert [b["text"]["text"] for b in request.buttons] == ["Approve", "Deny"]
        await eventually(lambda: set(request.reactions) == {"white_check_mark", "x"})
        await slack.event(slack.reaction_event("UBOB", request, "white_check_mark"))
        await eventually(lambda: "approved" in request.blocks[0]["text"]["text"])
        await eventually(lambda: image("nova", "v1.1") == current_image(sandbox, "nova"), 60)
        # the Logs button of the failed result answers for all to see, in the result's thread
        await slack.ack_of(await slack.click(result[0], "Logs", ALICE))
        logs = (await eventually(lambda: slack.replies(progress.ts)[1:]))[0]
        assert "logs for nova" in logs.shown.lower()
        await bot.idle()
