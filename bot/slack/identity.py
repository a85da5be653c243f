"""Who asks on Slack and whether holmbot can answer where they ask.

A user is `slack:USER_ID`, with the user groups the policy names (only those) as groups. The
members of those groups come from `usergroups.users.list`, a Tier 2 method (about 20 calls a
minute): they are cached for `groups_ttl`, fetched by one caller at a time, and a failed or
rate-limited fetch keeps the members known before. Lookups made before an ack never wait out a
429 (the ack must go within 3 s).

Whether the bot is a member of a channel comes from `conversations.info` (`is_member`; direct
messages always answer): a command in a channel the bot is not in would run with nowhere to
report, so it is refused with the way to invite the bot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection

from slack_sdk.errors import SlackApiError

from bot.slack.api import RateLimited, SlackApi, error_code
from commands.core.models import Platform, User

log = logging.getLogger(__name__)

NOT_A_MEMBER = (
    "holmbot is not a member of this channel, so it could not report here: invite it with "
    "`/invite @holmbot` (or from the channel's settings), then try again"
)
FAILED_RETRY_SECONDS = 30.0  # a group fetch that failed is tried again after this


class Groups:
    """The members of the user groups the policy names, cached."""

    def __init__(self, api: SlackApi, interest: Collection[str], ttl: float) -> None:
        self.api = api
        self.interest = tuple(sorted(interest))
        self.ttl = ttl
        self._members: dict[str, frozenset[str]] = {}
        self._due = 0.0  # monotonic time of the next fetch
        self._lock = asyncio.Lock()

    async def user(self, user_id: str, name: str | None = None) -> User:
        """The layer's user for a Slack user id, with their groups of interest."""
        groups = await self.of(user_id)
        return User(platform=Platform.SLACK, id=user_id, display_name=name or None, groups=groups)

    async def of(self, user_id: str) -> tuple[str, ...]:
        """The groups of interest `user_id` is a member of."""
        if not self.interest:
            return ()
        if time.monotonic() >= self._due:
            async with self._lock:
                if time.monotonic() >= self._due:
                    await self._fetch()
        return tuple(g for g in self.interest if user_id in self._members.get(g, frozenset()))

    async def _fetch(self) -> None:
        ok = True
        for group in self.interest:
            try:
                answer = await self.api.once("usergroups_users_list", usergroup=group)
            except (SlackApiError, RateLimited) as error:
                ok = False
                why = error_code(error) if isinstance(error, SlackApiError) else error
                log.warning("members of user group %s unknown: %s", group, why)
                continue
            self._members[group] = frozenset(answer.get("users") or ())
        self._due = time.monotonic() + (self.ttl if ok else min(self.ttl, FAILED_RETRY_SECONDS))


class Channels:
    """Whether the bot is a member of a channel; "no" is cached for `ttl`, "yes" for longer
    (an invited bot seldom leaves; a kicked one learns it from the next failed post)."""

    def __init__(self, api: SlackApi, ttl: float) -> None:
        self.api = api
        self.ttl = ttl
        self._known: dict[str, tuple[bool, float]] = {}
        self._asking: dict[str, asyncio.Task[bool]] = {}  # one lookup per channel at a time

    async def is_member(self, channel: str) -> bool:
        known = self._known.get(channel)
        if known is not None and time.monotonic() < known[1]:
            return known[0]
        asking = self._asking.get(channel)
        if asking is None:  # commands arriving together in a channel share one lookup
            asking = self._asking[channel] = asyncio.create_task(self._look_up(channel))
            asking.add_done_callback(lambda _: self._asking.pop(channel, None))
        return await asyncio.shield(asking)

    async def _look_up(self, channel: str) -> bool:
        try:
            answer = await self.api.once("conversations_info", channel=channel)
        except SlackApiError as error:
            if error_code(error) == "channel_not_found":  # private, and the bot not in it
                return self._remember(channel, False)
            log.warning("channel %s: membership unknown: %s", channel, error_code(error))
            return True  # the post will tell
        except RateLimited:
            return True
        info = answer.get("channel") or {}
        member = bool(info.get("is_member") or info.get("is_im") or info.get("is_mpim"))
        return self._remember(channel, member)

    def _remember(self, channel: str, member: bool) -> bool:
        self._known[channel] = (member, time.monotonic() + (self.ttl * (10 if member else 1)))
        return member

    def left(self, channel: str) -> None:
        """A post said the bot is not in `channel` (any more)."""
        self._remember(channel, False)
