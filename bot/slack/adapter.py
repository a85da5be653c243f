"""The Slack adapter: a bolt `AsyncApp` on the bot's Web API client, its connection, notices.

`start()` opens the Web API client (the configured base URL), checks the bot token with
`auth.test` (a bad token fails here, in words), builds the bolt app with its listeners, connects
(Socket Mode, or the HTTP endpoint) and starts showing the command layer's notices: approved
requests running, request messages redrawn on votes, decisions and expiry, rollbacks proposed,
operations picked up after a restart (edited in the message they had).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

from bot.adapter import AdapterStatus, show_notices
from bot.metrics import Metrics
from bot.slack.api import SlackApi, error_code
from bot.slack.connection import Connection, HttpConnection, SlackRefused, SocketConnection
from bot.slack.handlers import Handlers
from bot.slack.identity import Channels, Groups
from bot.slack.options import SlackOptions
from bot.slack.outcomes import Outcomes, Place
from bot.slack.reconcile import Reconciler
from commands.core.models import Notice, NoticeKind, Platform, User
from commands.flow.layer import CommandLayer

log = logging.getLogger(__name__)

EDITS = {NoticeKind.REQUEST_VOTED, NoticeKind.REQUEST_DECIDED, NoticeKind.REQUEST_EXPIRED}
SETTLE_SECONDS = 2.0  # closing waits this long for edits already due


class SlackAdapter:
    """holmbot in one Slack workspace."""

    platform = Platform.SLACK

    def __init__(self, options: SlackOptions, layer: CommandLayer, metrics: Metrics) -> None:
        self.options = options
        self.layer = layer
        self.metrics = metrics
        self.api = SlackApi(options.bot_token.get_secret_value(), options.api_url, metrics)
        self.channels = Channels(self.api, options.channels_ttl)
        interest = layer.policy.groups_of_interest(Platform.SLACK)
        groups = Groups(self.api, interest, options.groups_ttl)
        votes = {options.approve_reaction: True, options.deny_reaction: False}
        self.reconciler = Reconciler(layer, self.api, groups, votes)
        self.outcomes = Outcomes(layer, self.api, self.channels, options)
        self.handlers = Handlers(layer, self.outcomes, groups, self.channels, options, metrics)
        self.app: AsyncApp | None = None
        self.connection: Connection | None = None
        self.bot_user_id: str | None = None
        self._notices: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Check the token, register the listeners, connect, and start showing notices."""
        client = await self.api.open()
        try:
            try:
                auth = await self.api.call("auth_test")
            except SlackApiError as error:
                raise SlackRefused(
                    f"Slack refused the bot token ({error_code(error) or error}): check "
                    "HOLMBOT_SLACK__BOT_TOKEN (the xoxb- Bot User OAuth Token)"
                ) from error
            self.bot_user_id = self.reconciler.bot_user_id = auth.get("user_id")
            self.app = AsyncApp(
                client=client,
                signing_secret=(
                    self.options.signing_secret.get_secret_value()
                    if self.options.signing_secret is not None
                    else None
                ),
                request_verification_enabled=self.options.mode == "http",
                process_before_response=True,  # the listeners return at once
                logger=logging.getLogger("slack_bolt"),
            )
            self.handlers.register(self.app)
            self.connection = (
                SocketConnection(
                    self.app,
                    self.options,
                    self.metrics,
                    self.handlers.unacked,
                    on_reconnect=self.reconciler.reconcile,  # votes made meanwhile
                )
                if self.options.mode == "socket"
                else HttpConnection(self.app, self.options)
            )
            await self.connection.start()
        except BaseException:
            await self.api.close()
            raise
        self._notices = asyncio.create_task(show_notices(self.layer, Platform.SLACK, self.show))

    async def close(self) -> None:
        """Stop taking commands, let edits already due go out (briefly), disconnect."""
        self.handlers.closing = True
        if self.connection is not None:
            await self.connection.close()
        if self._notices is not None:
            self._notices.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._notices
        with contextlib.suppress(TimeoutError):  # replies and edits already under way
            await asyncio.wait_for(self._settle(), SETTLE_SECONDS)
        await self.outcomes.close()
        await self.api.close()

    async def _settle(self) -> None:
        await self.handlers.idle()
        await self.outcomes.editors.settle()

    async def idle(self) -> None:
        """Wait until every listener has returned, every followed operation has been shown
        to its end and every edit has gone out."""
        while True:
            await self.handlers.idle()
            await self.outcomes.idle()
            if not self.handlers.running and not self.outcomes.busy:
                return

    def status(self) -> AdapterStatus:
        connection = self.connection
        return AdapterStatus(
            connected=bool(connection is not None and connection.connected),
            handlers_registered=self.app is not None,
            last_event_at=self.handlers.last_event_at,
            detail=connection.detail() if connection is not None else "not started",
        )

    # --- notices ------------------------------------------------------------------------------

    async def show(self, notice: Notice) -> None:
        """Post or edit what one notice says."""
        outcome = notice.outcome
        refs = [ref for ref in notice.refs if ref.platform is Platform.SLACK]
        if notice.kind in EDITS:
            for ref in refs:
                self.outcomes.edit(ref, outcome.reply, request=True)
            return
        resumed = notice.kind is NoticeKind.OPERATION_RESUMED
        if resumed and refs and outcome.progress is not None and notice.operation_id:
            ref = refs[0]
            self.outcomes.spawn(
                self.outcomes.follow(
                    Place(ref.channel, ref.thread),
                    ref.message_id,
                    outcome.reply,
                    outcome.progress,
                    notice.operation_id,
                    notice.requester,
                )
            )
        elif resumed and refs:
            self.outcomes.edit(refs[0], outcome.reply)
        else:  # APPROVED_RUNNING, ROLLBACK_PROPOSED, or nothing to edit: a new message
            place = Place(notice.channel, notice.thread, _slack_id(notice.requester))
            await self.outcomes.deliver(outcome, place, notice.requester)


def _slack_id(user_key: str | None) -> str | None:
    """The Slack user id of a `slack:U…` key, else None."""
    try:
        user = User.parse(user_key) if user_key else None
    except ValueError:
        return None
    return user.id if user is not None and user.platform is Platform.SLACK else None


def create(config: Any, layer: CommandLayer, metrics: Metrics, **timings: Any) -> SlackAdapter:
    """The adapter for a `BotConfig`'s `slack` section; `timings` override the defaults."""
    return SlackAdapter(SlackOptions.of(config.slack, **timings), layer, metrics)
