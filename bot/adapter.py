"""What `holmbot run` expects of a chat adapter (Slack, Discord), and how it reports its state.

An adapter is made by its package's `create_adapter(config, layer, metrics)` (imported only when
its platform is configured), started once, asked for its status by `/ready`, closed on shutdown.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict


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
