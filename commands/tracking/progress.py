"""A replayable stream of progress: many followers, each sees everything from the start."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from commands.core.models import FinalResult, Progress

log = logging.getLogger(__name__)


@dataclass
class ProgressFeed:
    """Progress items recorded in order, ending with one `FinalResult`.

    Followers (the chat message, the audit, a resumed session) each get every item from the
    first, then live ones, until the final result.
    """

    emitted: list[Progress] = field(default_factory=list, init=False)
    _changed: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)

    @property
    def final(self) -> FinalResult | None:
        last = self.emitted[-1] if self.emitted else None
        return last if isinstance(last, FinalResult) else None

    def emit(self, item: Progress) -> None:
        """Record one progress item, numbered from 1 in `seq`, and wake every follower;
        nothing after the final result."""
        if self.final is not None:
            return
        self.emitted.append(item.model_copy(update={"seq": len(self.emitted) + 1}))
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def follow(self) -> AsyncIterator[Progress]:
        """Everything emitted so far, then live, until the final result."""
        index = 0
        while True:
            changed = self._changed
            while index < len(self.emitted):
                item = self.emitted[index]
                index += 1
                yield item
                if isinstance(item, FinalResult):
                    return
            await changed.wait()

    async def pump(
        self,
        source: AsyncIterator[Progress],
        operation_id: str,
        settle: Callable[[FinalResult], Awaitable[None]] | None = None,
    ) -> None:
        """Record everything `source` yields. `settle(final)` runs before the final result is
        shown, so whoever sees the end can rely on it being written down. If the source
        breaks off, the feed still ends with a failed result: no follower waits forever."""
        started = time.monotonic()
        try:
            async for item in source:
                if isinstance(item, FinalResult):
                    await self._end(item, settle)
                    return
                self.emit(item)
        except asyncio.CancelledError:
            await self._end(_failed(operation_id, started, "following it stopped", "cancelled"))
            raise
        except Exception:
            log.exception("following %s failed", operation_id)
            message = "following it failed; see the bot's log"
            await self._end(_failed(operation_id, started, message, "error"), settle)
        else:
            message = "it ended without a result"
            await self._end(_failed(operation_id, started, message, "error"), settle)

    async def _end(
        self, final: FinalResult, settle: Callable[[FinalResult], Awaitable[None]] | None = None
    ) -> None:
        if self.final is not None:
            return
        if settle is not None:
            try:
                await settle(final)
            except Exception:  # the result is still shown, whatever happened to its record
                log.exception("recording the end of %s failed", final.operation_id)
        self.emit(final)


def _failed(operation_id: str, started: float, message: str, reason: str) -> FinalResult:
    return FinalResult(
        operation_id=operation_id,
        ok=False,
        message=f"{operation_id}: {message}",
        duration_seconds=time.monotonic() - started,
        reason=reason,
    )
