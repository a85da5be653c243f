"""Votes by reaction on request messages, also those made while the gateway was down.

A ✅ (approve) or ❌ (deny) on a request message is a vote of the member who made it, with the
member's guild roles from the event deciding eligibility; taking it off withdraws the vote.
The bot's own reactions (it puts both on each request message) are ignored. A vote that does
not count is answered with a short reply to the request message that mentions the voter:
Discord has no ephemeral messages outside interactions, and a DM may be refused. After a
(re)connect, `reconcile` reads the reactions of every pending request message and votes for
the members it has not counted yet; those are audited but not answered.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable

import discord

from bot.discord import delivery
from bot.discord.client import HolmClient, Stamp
from bot.discord.embeds import USER_MENTIONS
from bot.discord.identity import mention, message_ref, user_of, where
from bot.discord.options import DiscordOptions
from commands.core.models import MessageRef, Outcome, Platform, User
from commands.flow.layer import CommandLayer

log = logging.getLogger(__name__)
ROLES_CACHED = 1000  # members whose roles are remembered (a removal event carries none)


class Reactions:
    """Reactions on request messages as votes."""

    def __init__(self, layer: CommandLayer, options: DiscordOptions) -> None:
        self.layer = layer
        self.options = options
        self._roles: OrderedDict[int, tuple[int, ...]] = OrderedDict()

    @property
    def emoji(self) -> tuple[str, str]:
        return self.options.approve_emoji, self.options.deny_emoji

    def remember(self, member: discord.abc.User) -> None:
        """Keep a member's role ids seen on any event, for events that carry none."""
        if isinstance(member, discord.Member):
            self._roles[member.id] = tuple(role.id for role in member.roles)
            self._roles.move_to_end(member.id)
            while len(self._roles) > ROLES_CACHED:
                self._roles.popitem(last=False)

    async def on_reaction(
        self, client: HolmClient, payload: discord.RawReactionActionEvent, stamp: Stamp | None
    ) -> None:
        """One reaction added or removed, live from the gateway."""
        emoji = str(payload.emoji)
        if client.user is None or payload.user_id == client.user.id or emoji not in self.emoji:
            return
        added = payload.event_type == "REACTION_ADD"
        if payload.member is not None:
            self.remember(payload.member)
        user = await self.user(client, payload.guild_id, payload.user_id)
        ref = message_ref(
            client.get_channel(payload.channel_id), payload.channel_id, payload.message_id
        )
        delivery_id = None
        if stamp is not None:
            delivery_id = delivery.of_reaction(
                stamp.session_id, stamp.sequence, payload.message_id, added
            )
        outcome = await self.layer.react(
            user,
            ref,
            approve=emoji == self.options.approve_emoji,
            removed=not added,
            delivery_id=delivery_id,
        )
        if added and outcome is not None and outcome.refused and not outcome.duplicate:
            await self._tell(client, ref, user, emoji, outcome)

    async def reconcile(self, client: HolmClient) -> int:
        """Count the reactions made on pending request messages while disconnected; how
        many votes were cast."""
        if client.user is None or client.ws is None or client.ws.session_id is None:
            return 0
        session, cast = client.ws.session_id, 0
        for request in await self.layer.state.pending_requests(Platform.DISCORD):
            counted = {vote.user for vote in await self.layer.state.votes(request.id)}
            for bound in await self.layer.state.messages_of("request", request.id):
                ref = bound.ref
                if ref.platform is not Platform.DISCORD:
                    continue
                for user_id, emoji in await self._reactions(client, ref):
                    if f"{Platform.DISCORD}:{user_id}" in counted:
                        continue
                    guild_id = self.options.guild_id
                    user = await self.user(client, guild_id, user_id)
                    outcome = await self.layer.react(
                        user,
                        ref,
                        approve=emoji == self.options.approve_emoji,
                        delivery_id=delivery.of_reconciled(
                            session, int(ref.message_id), user_id, emoji
                        ),
                    )
                    if outcome is not None and not outcome.refused and not outcome.duplicate:
                        counted.add(user.key)
                        cast += 1
        if cast:
            log.info("counted %d reactions made while disconnected", cast)
        return cast

    async def _reactions(self, client: HolmClient, ref: MessageRef) -> list[tuple[int, str]]:
        """(user id, emoji) of the vote reactions on a message, the bot's own left out."""
        channel = client.get_partial_messageable(where(ref))
        try:
            message = await channel.fetch_message(int(ref.message_id))
        except discord.NotFound:
            return []
        found: list[tuple[int, str]] = []
        for reaction in message.reactions:
            emoji = str(reaction.emoji)
            if emoji not in self.emoji:
                continue
            async for reactor in reaction.users():
                if client.user is None or reactor.id != client.user.id:
                    found.append((reactor.id, emoji))
        return found

    async def user(self, client: HolmClient, guild_id: int | None, user_id: int) -> User:
        """The voter with the guild roles the policy cares about: from the event, the
        cache, or the guild's member endpoint."""
        interest = self.layer.policy.groups_of_interest(Platform.DISCORD)
        roles = self._roles.get(user_id)
        guild = client.get_guild(guild_id) if guild_id is not None else None
        if roles is None and guild is not None and interest:
            try:
                member = await guild.fetch_member(user_id)
            except discord.HTTPException as error:
                log.warning("roles of member %s unknown: %s", user_id, error)
            else:
                self.remember(member)
                roles = self._roles.get(user_id)
        return user_of(user_id, _objects(roles or ()), interest)

    async def _tell(
        self, client: HolmClient, ref: MessageRef, user: User, emoji: str, outcome: Outcome
    ) -> None:
        """Say why a vote by reaction does not count, in a reply to the request message."""
        message = client.get_partial_messageable(where(ref)).get_partial_message(
            int(ref.message_id)
        )
        title = outcome.reply.with_mentions(mention).title
        text = f"{mention(user)} your {emoji} does not count: {title}"
        try:
            await message.reply(text[:2000], mention_author=False, allowed_mentions=USER_MENTIONS)
        except discord.HTTPException as error:
            log.warning("could not answer a refused vote: %s", error)


def _objects(ids: Iterable[int]) -> list[discord.Object]:
    return [discord.Object(role_id) for role_id in ids]
