"""Writing the audit log: one entry per thing that happened, told to listeners (metrics) too."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from commands.core.models import Invocation, plain_mention, render_mentions
from commands.core.parser import BaseCommand
from commands.store.state import AuditEntry, AuditOutcome, State

log = logging.getLogger(__name__)


class Auditor:
    """Writes audit entries to the state file; a failed write is logged, never raised, so an
    action does not fail because its record could not be written."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.listeners: list[Callable[[AuditEntry], None]] = []

    async def write(self, entry: AuditEntry) -> None:
        """Write one entry (users in its texts as `PLATFORM:ID`) and tell every listener."""
        entry = entry.model_copy(
            update={
                name: render_mentions(value, plain_mention)
                for name in ("detail", "error")
                if (value := getattr(entry, name))
            }
        )
        try:
            await self.state.audit(entry)
        except Exception:
            log.exception("could not write the audit entry for %s", entry.action)
        for listener in self.listeners:
            try:
                listener(entry)
            except Exception:
                log.exception("an audit listener failed")
        log.info(
            "audit outcome=%s action=%s service=%s platform=%s channel=%s",
            entry.outcome,
            entry.action,
            entry.service,
            entry.platform,
            entry.channel,
            extra={"user": entry.user, "request_id": entry.request_id},
        )

    async def invocation(
        self,
        invocation: Invocation,
        outcome: AuditOutcome,
        command: BaseCommand | None = None,
        **fields: Any,
    ) -> None:
        """The entry of what `invocation` asked for (and `command`, once parsed); a command
        about a request (approve, deny, withdraw, cancel) names it."""
        action = command.action if command else None
        service = command.service if command else None
        if (request_id := getattr(command, "request_id", None)) is not None:
            fields.setdefault("request_id", request_id)  # a vote, cancel or withdraw
        await self.write(
            AuditEntry.of(invocation, outcome, action=action, service=service, **fields)
        )
