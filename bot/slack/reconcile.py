"""Votes by reaction made while the Socket Mode connection was down.

Slack does not replay the events a connection missed, so after every reconnect the bot reads
the reactions on each pending request message it posted (`reactions.get`) and counts those it
did not see (`bot.missed_votes`); its own reactions are left out.
"""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError

from bot.missed_votes import count_missed_votes
from bot.slack.api import SlackApi, error_code
from bot.slack.identity import Groups
from commands.core.models import MessageRef, Platform
from commands.flow.layer import CommandLayer

log = logging.getLogger(__name__)


class Reconciler:
    """Counts the votes by reaction a disconnected bot did not see."""

    def __init__(
        self, layer: CommandLayer, api: SlackApi, groups: Groups, votes: dict[str, bool]
    ) -> None:
        self.layer = layer
        self.api = api
        self.groups = groups
        self.votes = votes  # reaction name -> approve
        self.bot_user_id: str | None = None

    async def reconcile(self) -> int:
        """Count the reactions on pending request messages; how many votes were cast."""
        return await count_missed_votes(
            self.layer, Platform.SLACK, self._reactions, self.groups.user, self.votes, _delivery
        )

    async def _reactions(self, ref: MessageRef) -> list[tuple[str, str]]:
        """(user id, reaction name) of the vote reactions on a message, the bot's left out."""
        try:
            answer = await self.api.call(
                "reactions_get", channel=ref.channel, timestamp=ref.message_id, full=True
            )
        except SlackApiError as error:
            log.warning("cannot read the reactions of %s: %s", ref.message_id, error_code(error))
            return []
        reactions = (answer.get("message") or {}).get("reactions") or []
        return [
            (user_id, reaction["name"])
            for reaction in reactions
            if reaction.get("name") in self.votes
            for user_id in reaction.get("users") or []
            if user_id != self.bot_user_id
        ]


def _delivery(ref: MessageRef, user_id: str, name: str) -> str:
    """One reaction found on a request message: counted once, whichever reconnect finds it."""
    return f"reconciled:{ref.channel}:{ref.message_id}:{user_id}:{name}"
