"""Votes by reaction made while an adapter was disconnected, counted after it reconnects.

A platform that does not replay what a connection missed leaves reactions on pending request
messages the bot never saw. `count_missed_votes` reads them (through the adapter's
`reactions_of`) and counts, as votes, those of users whose vote is not counted yet: through
`CommandLayer.react`, like a live reaction, with a delivery id per message, user and reaction,
so one reaction is counted once however often the bot reconnects. Votes that do not count are
not announced again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from commands.core.models import MessageRef, Platform, User
from commands.flow.layer import CommandLayer

log = logging.getLogger(__name__)

# (user id, reaction) pairs of the vote reactions on one message, the bot's own left out
ReactionsOf = Callable[[MessageRef], Awaitable[list[tuple[str, str]]]]


async def count_missed_votes(
    layer: CommandLayer,
    platform: Platform,
    reactions_of: ReactionsOf,
    user_of: Callable[[str], Awaitable[User]],
    approves: dict[str, bool],
    delivery_of: Callable[[MessageRef, str, str], str],
) -> int:
    """Count the vote reactions on `platform`'s pending request messages not counted yet;
    how many votes were cast. `approves`: reaction -> approve (True) or deny."""
    cast = 0
    for request in await layer.state.pending_requests(platform):
        counted = {vote.user for vote in await layer.state.votes(request.id)}
        for bound in await layer.state.messages_of("request", request.id):
            if bound.ref.platform is not platform:
                continue
            for user_id, reaction in await reactions_of(bound.ref):
                if f"{platform}:{user_id}" in counted:
                    continue
                user = await user_of(user_id)
                outcome = await layer.react(
                    user,
                    bound.ref,
                    approve=approves[reaction],
                    delivery_id=delivery_of(bound.ref, user_id, reaction),
                )
                if outcome is not None and not outcome.refused and not outcome.duplicate:
                    counted.add(user.key)
                    cast += 1
    if cast:
        log.info("counted %d reactions made on %s while disconnected", cast, platform)
    return cast
