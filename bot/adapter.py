"""What `holmbot run` expects of a chat adapter (Slack, Discord), and how it reports its state.

An adapter is made by its package's `create_adapter(config, layer, metrics)` (imported only when
its platform is configured), started once, asked for its status by `/ready`, closed on shutdown.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, ConfigDict

from commands.core.models import Notice, Platform

if TYPE_CHECKING:
    from commands.flow.layer import CommandLayer

log = logging.getLogger(__name__)


class AdapterStatus(BaseModel):
    """An adapter's connection as `/ready` and `/metrics` show it."""

    model_config = ConfigDict(frozen=True)

    connected: bool
    handlers_registered: bool
    last_event_at: float | None = None  # time.time() of the last event received, if any
    detail: str = ""  # why it is not ready, in words an operator can act on

    @property
    def ready(self) -> bool:
        return self.connected and self.handlers_registered


class ChatAdapter(Protocol):
    """One chat platform's connection to the command layer."""

    async def start(self) -> None:
        """Connect and register handlers; return once running (failures show in `status`)."""

    async def close(self) -> None:
        """Stop taking commands, let in-flight replies finish, disconnect."""

    def status(self) -> AdapterStatus:
        """The connection as it is now."""


async def show_notices(
    layer: CommandLayer, platform: Platform, show: Callable[[Notice], Awaitable[None]]
) -> None:
    """Show every notice for `platform` as it comes; one that cannot be shown is logged and
    does not silence the rest. Runs until cancelled."""
    async for notice in layer.subscribe(platform):
        try:
            await show(notice)
        except Exception:
            log.exception("showing a %s notice on %s failed", notice.kind, platform)
