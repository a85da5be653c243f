"""The expiry timer: pending requests expire when their time comes, also after a restart."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from commands.access.approvals import Approvals
from commands.store.state import ApprovalRequest, utcnow

log = logging.getLogger(__name__)

RETRY_SECONDS = 5.0  # after a failure of the state file


class ExpiryTimer:
    """Sleeps until the next expiry (or until `poke` says a new request came), expires what
    is due through the approval engine, and hands each expired request to `expired`."""

    def __init__(
        self, approvals: Approvals, expired: Callable[[ApprovalRequest], Awaitable[None]]
    ) -> None:
        self.approvals = approvals
        self.expired = expired
        self._new_request = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def poke(self) -> None:
        """A request was opened: its expiry may be the next one."""
        self._new_request.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                await self._once()
            except Exception:  # a bad moment of the state file must not end expiries
                log.exception("expiring approval requests failed; trying again")
                await asyncio.sleep(RETRY_SECONDS)

    async def _once(self) -> None:
        self._new_request.clear()
        upcoming = await self.approvals.state.next_expiry()
        wait = None if upcoming is None else (upcoming - utcnow()).total_seconds()
        if wait is None or wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_request.wait(), wait)
            return
        for request in await self.approvals.expire_due():
            await self.expired(request)
