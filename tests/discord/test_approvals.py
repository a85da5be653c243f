"""Approvals on Discord: a request message with Approve/Deny buttons and the vote reactions;
votes by reaction from members whose guild roles (from the event) make them approvers, by
button; refusals (your own request, no approver role) said with the reason; the bot's own
reactions ignored."""

from __future__ import annotations

from sandbox.cluster import Sandbox
from tests.console.driver import audit_log, current_image, deployment, image
from tests.discord.conftest import ALICE, BOB, CAROL, DAVE, OPS, Bot
from tests.fakes.discord import BOT_ID, FakeDiscord, Interaction, Message
from tests.polling import eventually

APPROVE, DENY = "✅", "❌"


async def ask(fake: FakeDiscord, user: int, text: str) -> tuple[Message, str]:
    """`text` asked by slash command; its request message (once reacted on) and request id."""
    interaction = await fake.slash(user, OPS, "holmbot", text=text)
    request = await eventually(lambda: fake.answer_message(interaction))
    await eventually(lambda: request.reactions.get(DENY) == [BOT_ID])
    approve = next(b["custom_id"] for b in request.buttons if b["label"] == "Approve")
    return request, approve.removeprefix("holmbot:approve ")


def votes(entries: list[dict]) -> list[tuple[str, str]]:
    return [(e["user"], e["outcome"]) for e in entries if e["action"] in ("approve", "deny")]


def results_for(fake: FakeDiscord, user: int) -> list[Message]:
    """The final results that name (and ping) `user` as the requester."""
    return [m for m in fake.posted() if m.content == f"<@{user}>" and m.mentions == [user]]


async def answer_of(fake: FakeDiscord, interaction: Interaction) -> Message:
    return await eventually(lambda: fake.answer_message(interaction))


async def test_an_admins_reaction_approves_and_runs_the_request_refusals_say_why(
    bot: Bot, discord_fake: FakeDiscord, sandbox: Sandbox
) -> None:
    request, _ = await ask(discord_fake, ALICE, "deploy postgres 16.2")
    assert request.embeds[0]["title"].startswith("⚠️ approval needed for deploy postgres 16.2")
    assert [b["label"] for b in request.buttons] == ["Approve", "Deny"]
    assert request.reactions == {APPROVE: [BOT_ID], DENY: [BOT_ID]}  # the bot's, echoed back
    # a member without an approver role: refused, with the reason, in a reply that pings them
    await discord_fake.react(DAVE, request, APPROVE)
    [refusal] = await eventually(lambda: discord_fake.replies_to(request.id))
    assert refusal.content.startswith(f"<@{DAVE}> your ✅ does not count: ")
    assert "admin" in refusal.content and refusal.mentions == [DAVE]
    assert current_image(sandbox, "postgres") == image("postgres", "15.6")
    # an admin: approved; the request message says so and loses its buttons; it runs
    await discord_fake.react(BOB, request, APPROVE)
    await eventually(lambda: ": approved" in request.embeds[0]["title"] or None)
    await eventually(lambda: request.buttons == [])
    outcome = (await eventually(lambda: discord_fake.replies_to(request.id)[1:]))[0]
    assert "Deploying postgres:16.2" in outcome.shown
    result = await eventually(lambda: results_for(discord_fake, ALICE))
    await bot.idle()
    assert "successfully rolled out" in result[0].shown
    assert current_image(sandbox, "postgres") == image("postgres", "16.2")
    entries = await audit_log(bot.layer.clients.config)
    assert votes(entries) == [(f"discord:{DAVE}", "refused"), (f"discord:{BOB}", "approved")]
    assert f"discord:{BOT_ID}" not in {e["user"] for e in entries}  # own reactions ignored
    deploy = [e for e in entries if e["action"] == "deploy"]
    assert deploy[-1]["outcome"] == "ok" and deploy[-1]["approvers"] == [f"discord:{BOB}"]


async def test_a_button_approves_and_your_own_request_is_refused_privately(
    bot: Bot, discord_fake: FakeDiscord, sandbox: Sandbox
) -> None:
    request, request_id = await ask(discord_fake, CAROL, "restart postgres")
    # Carol is an admin, but it is her own request: by button and by reaction
    own = await answer_of(
        discord_fake, await discord_fake.click(CAROL, request, f"holmbot:approve {request_id}")
    )
    assert own.ephemeral and f"<@{CAROL}> asked for {request_id} and cannot approve it" in own.shown
    await discord_fake.react(CAROL, request, APPROVE)
    [refusal] = await eventually(lambda: discord_fake.replies_to(request.id))
    assert (
        refusal.content.startswith(f"<@{CAROL}> your ✅ does not count")
        and "cannot approve it" in refusal.content
    )
    before = deployment(sandbox, "postgres")["metadata"]["generation"]
    # Bob's click counts: he is told privately, the request message shows it
    click = await discord_fake.click(BOB, request, f"holmbot:approve {request_id}")
    told = await answer_of(discord_fake, click)
    assert told.ephemeral and "approved" in told.shown
    await eventually(lambda: ": approved" in request.embeds[0]["title"] or None)
    result = await eventually(lambda: results_for(discord_fake, CAROL))
    await bot.idle()
    assert "successfully rolled out" in result[0].shown
    assert deployment(sandbox, "postgres")["metadata"]["generation"] > before
    entries = await audit_log(bot.layer.clients.config)
    assert votes(entries) == [
        (f"discord:{CAROL}", "refused"),
        (f"discord:{CAROL}", "refused"),
        (f"discord:{BOB}", "approved"),
    ]
