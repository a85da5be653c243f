"""Notices by platform: what the bot says on its own goes to the adapter of that platform only.

Notices raised before an adapter subscribes (a restart's recovery runs before the adapters
connect) wait for it, so none is lost or taken by another platform's adapter.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator

from commands.core.models import Notice, Platform

log = logging.getLogger(__name__)


class NoticeBus:
    """One queue per platform; `subscribe(platform)` reads it."""

    def __init__(self) -> None:
        self._queues: defaultdict[Platform, asyncio.Queue[Notice]] = defaultdict(asyncio.Queue)
        self._subscribed: set[Platform] = set()

    def publish(self, notice: Notice) -> None:
        """Queue `notice` for its platform's adapter (kept until one subscribes)."""
        log.info(
            "notice %s for %s:%s",
            notice.kind,
            notice.platform,
            notice.channel,
            extra={"request_id": notice.request_id, "operation_id": notice.operation_id},
        )
        self._queues[notice.platform].put_nowait(notice)

    async def subscribe(self, platform: Platform) -> AsyncIterator[Notice]:
        """Every notice for `platform`, including those raised before subscribing. One
        subscriber per platform: a second one would take notices from the first."""
        if platform in self._subscribed:
            raise RuntimeError(f"notices for {platform} already have a subscriber")
        self._subscribed.add(platform)
        queue = self._queues[platform]
        try:
            while True:
                notice = await queue.get()
                try:
                    yield notice
                finally:  # the subscriber asked for the next one: this one is handled
                    queue.task_done()
        finally:
            self._subscribed.discard(platform)

    async def join(self, platform: Platform) -> None:
        """Wait until every notice for `platform` so far has been handled by its subscriber."""
        await self._queues[platform].join()

    def pending(self, platform: Platform) -> int:
        """How many notices for `platform` wait to be read."""
        return self._queues[platform].qsize()
