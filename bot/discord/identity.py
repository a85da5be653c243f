"""Who and where on Discord, in the command layer's terms.

A user is `discord:USER_ID` with the guild role ids the policy cares about as groups; a place
is the channel id, with the thread id when the message is in a thread (a thread's commands are
the channel's, for the policy's channel list).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import discord

from commands.core.models import MessageRef, Platform, User, plain_mention


def user_of(
    user_id: int, roles: Iterable[discord.abc.Snowflake], interest: Collection[str], name: str = ""
) -> User:
    """The layer's user for a Discord account; groups are the roles the policy grants to."""
    groups = tuple(sorted(str(role.id) for role in roles if str(role.id) in interest))
    return User(
        platform=Platform.DISCORD, id=str(user_id), display_name=name or None, groups=groups
    )


def member_user(member: discord.abc.User, interest: Collection[str]) -> User:
    """A member (with roles) or a plain user (a DM: no roles)."""
    roles = member.roles if isinstance(member, discord.Member) else ()
    return user_of(member.id, roles, interest, member.display_name)


def place_of(channel: object, channel_id: int) -> tuple[str, str | None]:
    """(channel, thread) of a message: a thread counts as its parent channel."""
    if isinstance(channel, discord.Thread) and channel.parent_id is not None:
        return str(channel.parent_id), str(channel.id)
    return str(channel_id), None


def message_ref(channel: object, channel_id: int, message_id: int) -> MessageRef:
    """The layer's reference to a message in `channel`."""
    place, thread = place_of(channel, channel_id)
    return MessageRef(
        platform=Platform.DISCORD, channel=place, message_id=str(message_id), thread=thread
    )


def where(ref: MessageRef) -> int:
    """The Discord channel id a referenced message lives in (its thread, if any)."""
    return int(ref.thread or ref.channel)


def mention(user: User) -> str:
    """`<@123>` for Discord users; other platforms' users as plain `PLATFORM:ID`."""
    return f"<@{user.id}>" if user.platform is Platform.DISCORD else plain_mention(user)


def mention_key(user_key: str | None) -> str | None:
    """A Discord mention for a `discord:ID` key (the requester of a notice), else None."""
    if user_key is None:
        return None
    try:
        user = User.parse(user_key)
    except ValueError:
        return None
    return mention(user) if user.platform is Platform.DISCORD else None
