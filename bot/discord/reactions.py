"""Votes by reaction on request messages, also those made while the gateway was down.

An approve (✅ by default) or deny (❌) reaction on a request message is a vote of the member
who made it; the member's guild roles come with the event (`on_raw_reaction_add` fires for
uncached messages too, and needs no members intent) and decide eligibility. Taking it off
withdraws the vote (the removal event carries no roles; a withdrawal needs none). The bot's own
reactions (it puts both on each request message, and sees them echoed) are ignored. A vote that
does not count is answered with a short reply to the request message that mentions the voter:
Discord has no ephemeral messages outside interactions.

After a new gateway session (a start, or a reconnect that could not resume, so missed events
are lost), `reconcile` reads the reactions of every pending request message and votes for the
members it has not counted yet (their roles read from the guild); those are audited, not
answered.
"""

from __future__ import annotations

import logging

import discord

from bot.discord import delivery
from bot.discord.client import Stamp
from bot.discord.embeds import USER_MENTIONS, markdown
from bot.discord.identity import mention, message_ref, user_of, where
from bot.missed_votes import count_missed_votes
from bot.settings import DiscordConfig
from commands.core.models import MessageRef, Outcome, Platform, User
from commands.flow.layer import CommandLayer

log = logging.getLogger(__name__)


class Reactions:
    """Reactions on request messages as votes."""

    def __init__(self, layer: CommandLayer, config: DiscordConfig) -> None:
        self.layer = layer
        self.config = config

    @property
    def votes(self) -> dict[str, bool]:
        return {self.config.approve_emoji: True, self.config.deny_emoji: False}

    def _interest(self) -> frozenset[str]:
        return self.layer.policy.groups_of_interest(Platform.DISCORD)

    async def on_reaction(
        self, client: discord.Client, payload: discord.RawReactionActionEvent, stamp: Stamp | None
    ) -> None:
        """One reaction added or removed, live from the gateway."""
        emoji = str(payload.emoji)
        if client.user is None or payload.user_id == client.user.id or emoji not in self.votes:
            return
        added = payload.event_type == "REACTION_ADD"
        member = payload.member
        roles = member.roles if member is not None else ()
        name = member.display_name if member is not None else ""
        user = user_of(payload.user_id, roles, self._interest(), name)
        ref = message_ref(
            client.get_channel(payload.channel_id), payload.channel_id, payload.message_id
        )
        delivery_id = None
        if stamp is not None:
            delivery_id = delivery.of_reaction(
                stamp.session_id, stamp.sequence, payload.message_id, added
            )
        outcome = await self.layer.react(
            user, ref, approve=self.votes[emoji], removed=not added, delivery_id=delivery_id
        )
        if added and outcome is not None and outcome.refused and not outcome.duplicate:
            await self._tell(client, ref, user, emoji, outcome)

    async def reconcile(self, client: discord.Client) -> int:
        """Count the reactions made on pending request messages while no session saw them;
        how many votes were cast."""
        ws = client.ws
        if client.user is None or ws is None or ws.session_id is None:
            return 0
        session = ws.session_id

        async def reactions_of(ref: MessageRef) -> list[tuple[str, str]]:
            return [(str(user), emoji) for user, emoji in await self._reactions(client, ref)]

        async def voter(user_id: str) -> User:
            return await self._member(client, int(user_id))

        def delivery_of(ref: MessageRef, user_id: str, emoji: str) -> str:
            return delivery.of_reconciled(session, int(ref.message_id), int(user_id), emoji)

        return await count_missed_votes(
            self.layer, Platform.DISCORD, reactions_of, voter, self.votes, delivery_of
        )

    async def _reactions(self, client: discord.Client, ref: MessageRef) -> list[tuple[int, str]]:
        """(user id, emoji) of the vote reactions on a message, the bot's own left out."""
        if ref.platform is not Platform.DISCORD:
            return []
        channel = client.get_partial_messageable(where(ref))
        try:
            message = await channel.fetch_message(int(ref.message_id))
        except discord.HTTPException as error:
            log.warning("cannot read request message %s: %s", ref.message_id, error)
            return []
        found: list[tuple[int, str]] = []
        for reaction in message.reactions:
            emoji = str(reaction.emoji)
            if emoji not in self.votes or reaction.count == int(reaction.me):
                continue
            async for reactor in reaction.users():
                if client.user is None or reactor.id != client.user.id:
                    found.append((reactor.id, emoji))
        return found

    async def _member(self, client: discord.Client, user_id: int) -> User:
        """A voter with the guild roles the policy cares about, read from the guild."""
        interest = self._interest()
        guild = client.get_guild(self.config.guild_id or 0)
        if guild is None or not interest:
            return user_of(user_id, (), interest)
        try:
            member = await guild.fetch_member(user_id)
        except discord.HTTPException as error:
            log.warning("roles of member %s unknown: %s", user_id, error)
            return user_of(user_id, (), interest)
        return user_of(user_id, member.roles, interest, member.display_name)

    async def _tell(
        self, client: discord.Client, ref: MessageRef, user: User, emoji: str, outcome: Outcome
    ) -> None:
        """Say why a vote by reaction does not count, in a reply to the request message."""
        message = client.get_partial_messageable(where(ref)).get_partial_message(
            int(ref.message_id)
        )
        text = f"{mention(user)} your {emoji} does not count: {markdown(outcome.reply.title)}"
        try:
            await message.reply(text[:2000], mention_author=False, allowed_mentions=USER_MENTIONS)
        except discord.HTTPException as error:
            log.warning("could not answer a refused vote: %s", error)
