"""The command layer as chat adapters use it: clicks and reactions take the typed path, notices
go to their platform with the messages they concern, people are counted across platforms."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bot.console.session import ConsoleSession
from commands.access.policy import AccessConfig
from commands.core.config import Config
from commands.core.models import (
    Invocation,
    MessageRef,
    Notice,
    NoticeKind,
    Platform,
    User,
)
from commands.flow.layer import CommandLayer
from commands.store.state import AuditOutcome, RequestStatus
from sandbox.cluster import Sandbox
from tests.console.driver import current_image, deployment, image
from tests.polling import eventually

ADMINS = "S0ADMINS"  # a Slack user group
DISCORD_ADMINS = "77001"  # a Discord guild role
ALICE = User(platform=Platform.SLACK, id="UALICE")
ALICE_ON_DISCORD = User(platform=Platform.DISCORD, id="1001", groups=(DISCORD_ADMINS,))
BOB = User(platform=Platform.SLACK, id="UBOB", groups=(ADMINS,))
CAROL = User(platform=Platform.SLACK, id="UCAROL")
DAVE = User(platform=Platform.DISCORD, id="1004", groups=(DISCORD_ADMINS,))
CHANNEL = "C0OPS"


def chat_config(config: Config, *, expires_after: int = 3600, approvals: int = 1) -> Config:
    """Slack and Discord users and roles; deploys of postgres need admin approval."""
    access = AccessConfig.model_validate(
        {
            "roles": {
                "admin": {"slack_groups": [ADMINS], "discord_roles": [DISCORD_ADMINS]},
                "deployer": {"users": ["slack:UALICE", "slack:UCAROL", "discord:1004"]},
            },
            "channels": {"slack": [CHANNEL], "discord": ["*"]},
            "protected_approval": {
                "approvals": approvals,
                "approvers": ["admin"],
                "expires_after": expires_after,
            },
            "people": {"alice": ["slack:UALICE", "discord:1001"]},
        }
    )
    return config.model_copy(update={"access": access, "protected_services": ["postgres"]})


@asynccontextmanager
async def opened(config: Config) -> AsyncIterator[CommandLayer]:
    layer = await CommandLayer.open(config)
    try:
        yield layer
    finally:
        await layer.close()


class Inbox:
    """Everything one platform's subscription delivered."""

    def __init__(self, layer: CommandLayer, platform: Platform) -> None:
        self.notices: list[Notice] = []
        self._task = asyncio.create_task(self._read(layer, platform))

    async def _read(self, layer: CommandLayer, platform: Platform) -> None:
        async for notice in layer.subscribe(platform):
            self.notices.append(notice)

    def of(self, kind: NoticeKind) -> list[Notice]:
        return [notice for notice in self.notices if notice.kind is kind]

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def ask_postgres(layer: CommandLayer, user: User = ALICE, tag: str = "16.2") -> str:
    outcome = await layer.handle(
        Invocation(user=user, channel=CHANNEL, text=f"deploy postgres {tag}")
    )
    assert outcome.request_id is not None, outcome.reply.text
    return outcome.request_id


async def audit(layer: CommandLayer, **match: Any) -> list[Any]:
    entries = await layer.state.audit_entries(limit=500)
    return [e for e in entries if all(getattr(e, k) == v for k, v in match.items())]


async def test_a_click_and_a_reaction_take_the_path_of_typed_text(
    bot_config: Config, sandbox: Sandbox
) -> None:
    before = deployment(sandbox, "postgres")["metadata"]["generation"]
    async with opened(chat_config(bot_config)) as layer:
        request_id = await ask_postgres(layer)
        message = MessageRef(platform=Platform.SLACK, channel=CHANNEL, message_id="1700.000100")
        await layer.bind_message(message, request_id=request_id)

        carol = await layer.react(CAROL, message, approve=True, delivery_id="Ev01")
        assert carol is not None and carol.refused and carol.reply.private
        assert "needs the role admin" in carol.reply.text

        elsewhere = Invocation(
            user=BOB, channel="C0OTHER", text=f"approve {request_id}", delivery_id="click-0"
        )
        refused = await layer.handle(elsewhere)
        assert refused.refused and refused.reply.private
        assert "does not take commands in this channel" in refused.reply.title

        click = Invocation(
            user=BOB, channel=CHANNEL, text=f"approve {request_id}", delivery_id="click-1"
        )
        approved = await layer.handle(click)
        assert not approved.refused, approved.reply.text
        again = await layer.handle(click)
        assert again.duplicate
        late = await layer.react(BOB, message, approve=True, delivery_id="Ev02")
        assert late is not None and late.refused and "already" in late.reply.text

        await eventually(lambda: current_image(sandbox, "postgres") == image("postgres", "16.2"))
        request = await layer.state.get_request(request_id)
        assert request is not None and request.status is RequestStatus.EXECUTED
        operation = await layer.state.get_operation(request.operation_id or "")
        assert operation is not None and operation.service == "postgres"
        assert deployment(sandbox, "postgres")["metadata"]["generation"] == before + 1

        votes = await audit(layer, action="approve", request_id=request_id)
        by_outcome = {(e.user, e.outcome) for e in votes}
        assert ("slack:UCAROL", AuditOutcome.REFUSED) in by_outcome
        assert ("slack:UBOB", AuditOutcome.APPROVED) in by_outcome
        assert [e.channel for e in votes if e.outcome is AuditOutcome.REFUSED] == [
            CHANNEL,
            "C0OTHER",
            CHANNEL,
        ]
        duplicates = await audit(layer, outcome=AuditOutcome.DUPLICATE)
        assert [e.detail for e in duplicates] == ["click-1"]


async def test_a_reaction_on_a_message_that_is_no_request_is_not_a_vote(
    bot_config: Config,
) -> None:
    async with opened(chat_config(bot_config)) as layer:
        other = MessageRef(platform=Platform.SLACK, channel=CHANNEL, message_id="1700.9")
        assert await layer.react(BOB, other, approve=True, delivery_id="Ev09") is None
        assert await audit(layer, action="approve") == []


async def test_each_platform_gets_only_its_own_notices(bot_config: Config) -> None:
    async with opened(chat_config(bot_config, expires_after=1)) as layer:
        slack, discord = Inbox(layer, Platform.SLACK), Inbox(layer, Platform.DISCORD)
        on_slack = await ask_postgres(layer, ALICE)
        on_discord = await ask_postgres(layer, DAVE, tag="15.4")
        await eventually(lambda: slack.of(NoticeKind.REQUEST_EXPIRED))
        await eventually(lambda: discord.of(NoticeKind.REQUEST_EXPIRED))
        assert [n.request_id for n in slack.notices] == [on_slack]
        assert [n.request_id for n in discord.notices] == [on_discord]
        assert slack.notices[0].platform is Platform.SLACK
        await slack.close()
        await discord.close()


async def test_the_request_message_is_redrawn_on_votes_approval_denial_and_expiry(
    bot_config: Config, sandbox: Sandbox
) -> None:
    config = chat_config(bot_config, approvals=2)
    unchanged = deployment(sandbox, "postgres")["spec"]
    async with opened(config) as layer:
        inbox = Inbox(layer, Platform.SLACK)
        denied_id = await ask_postgres(layer)
        denied_msg = MessageRef(platform=Platform.SLACK, channel=CHANNEL, message_id="1.1")
        await layer.bind_message(denied_msg, request_id=denied_id)
        await layer.react(BOB, denied_msg, approve=True, delivery_id="Ev1")
        voted = await eventually(lambda: inbox.of(NoticeKind.REQUEST_VOTED))
        assert voted[0].refs == [denied_msg]
        assert "✓ slack:UBOB" in voted[0].outcome.reply.text
        assert [a.command for a in voted[0].outcome.reply.actions] == [
            f"approve {denied_id}",
            f"deny {denied_id}",
        ]
        await layer.react(BOB, denied_msg, approve=True, removed=True, delivery_id="Ev2")
        withdrawn = await eventually(lambda: inbox.of(NoticeKind.REQUEST_VOTED)[1:])
        assert "votes: none yet" in withdrawn[0].outcome.reply.text
        assert await layer.state.votes(denied_id) == []
        await layer.react(
            DAVE.model_copy(update={"platform": Platform.SLACK, "groups": (ADMINS,)}),
            denied_msg,
            approve=False,
            delivery_id="Ev3",
        )
        decided = await eventually(lambda: inbox.of(NoticeKind.REQUEST_DECIDED))
        assert decided[0].refs == [denied_msg]
        assert decided[0].outcome.reply.actions == []  # no buttons on a decided request
        assert "denied" in decided[0].outcome.reply.title
        await inbox.close()

    # the next start still knows the message of a pending request, and edits it on expiry
    short = chat_config(bot_config, expires_after=2)
    async with opened(short) as layer:
        expiring = await ask_postgres(layer)
        message = MessageRef(platform=Platform.SLACK, channel=CHANNEL, message_id="2.2")
        await layer.bind_message(message, request_id=expiring)
    async with opened(short) as layer:
        inbox = Inbox(layer, Platform.SLACK)
        expired = await eventually(lambda: inbox.of(NoticeKind.REQUEST_EXPIRED))
        assert expired[0].refs == [message]
        assert "expired" in expired[0].outcome.reply.title
        assert expired[0].outcome.reply.actions == []
        await inbox.close()
    assert deployment(sandbox, "postgres")["spec"] == unchanged  # nothing ran


async def test_one_person_cannot_approve_their_own_request_from_another_platform(
    bot_config: Config,
) -> None:
    async with opened(chat_config(bot_config)) as layer:
        request_id = await ask_postgres(layer, ALICE)
        own = Invocation(user=ALICE_ON_DISCORD, channel="D1", text=f"approve {request_id}")
        refused = await layer.handle(own)
        assert refused.refused and refused.reply.private
        assert "asked for" in refused.reply.text and "slack:UALICE" in refused.reply.text
        assert await layer.state.votes(request_id) == []
        entries = await audit(layer, action="approve", outcome=AuditOutcome.REFUSED)
        assert [e.user for e in entries] == ["discord:1001"]


async def test_two_accounts_of_one_person_are_one_approver(bot_config: Config) -> None:
    config = chat_config(bot_config, approvals=2)
    people = {"bob": ["slack:UBOB", "discord:1004"]}
    access = config.access.model_copy(update={"people": {**config.access.people, **people}})
    async with opened(config.model_copy(update={"access": access})) as layer:
        request_id = await ask_postgres(layer)
        first = await layer.handle(
            Invocation(user=BOB, channel=CHANNEL, text=f"approve {request_id}")
        )
        assert not first.refused
        second = await layer.handle(
            Invocation(user=DAVE, channel="D1", text=f"approve {request_id}")
        )
        assert second.refused and "a vote counts once per person" in second.reply.text
        request = await layer.state.get_request(request_id)
        assert request is not None and request.status is RequestStatus.PENDING


async def test_the_console_speaks_only_as_console_users_off_the_sandbox(
    bot_config: Config,
) -> None:
    async with opened(bot_config) as layer:
        out = io.StringIO()
        session = ConsoleSession(layer, User.parse("console:operator"), out)
        await session.run_line("as slack:U0ADMIN: approve abcd")
        await session.close()
        assert "the console speaks only as console users, not as slack:U0ADMIN" in out.getvalue()
        refused = await audit(layer, user="slack:U0ADMIN", outcome=AuditOutcome.REFUSED)
        assert [e.command for e in refused] == ["approve abcd"]
        assert await audit(layer, action="approve") == []

        played = io.StringIO()
        sandbox_session = ConsoleSession(
            layer, User.parse("console:operator"), played, any_user=True
        )
        await sandbox_session.run_line("as slack:U0ADMIN: approve abcd")
        await sandbox_session.close()
        assert "no approval request abcd" in played.getvalue()
