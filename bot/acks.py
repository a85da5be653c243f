"""Acks first: the chat requests taken and not acknowledged yet.

Slack wants every request acknowledged within 3 s, Discord every interaction, and a burst of
commands should see all its acknowledgements long before that. An adapter acknowledges first
and hands the work off; the work waits until no request is waiting for its acknowledgement (for
at most a bound), so that one command's work never holds the event loop while another's is
still due. Slack's Socket Mode counts each envelope from when it is read off the socket to when
its ack has been sent (each listener also counts itself until it returns: bolt then sends the
ack); Discord counts each interaction from its INTERACTION_CREATE to its response or deferral.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Hashable

ACKS_FIRST_SECONDS = 0.25  # handed-off work waits at most this long for acks still due
STALE_SECONDS = 3.0  # the platforms' ack window: a request taken longer ago is not waited for


class Unacked:
    """The requests taken and not acknowledged yet."""

    def __init__(self) -> None:
        self._since: dict[Hashable, float] = {}  # key -> monotonic time taken
        self._none = asyncio.Event()  # set while there are none
        self._none.set()

    def __len__(self) -> int:
        return len(self._since)

    def taken(self, key: Hashable) -> None:
        now = time.monotonic()
        for stale in [k for k, at in self._since.items() if now - at > STALE_SECONDS]:
            del self._since[stale]  # its ack went some way that did not say so
        self._since[key] = now
        self._none.clear()

    def answered(self, key: Hashable) -> None:
        self._since.pop(key, None)
        if not self._since:
            self._none.set()

    async def none_left(self, bound: float) -> None:
        """Return once no request waits for its ack, or after `bound` seconds."""
        if self._none.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(bound):
                await self._none.wait()
