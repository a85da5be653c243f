"""Actions as buttons whose custom_id carries the command (`holmbot:approve k3x9`).

`ActionButton` is a dynamic item: registered once on the client (`add_dynamic_items`), it
answers clicks on any message that has one, also messages posted before a restart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from re import Match
from typing import Any, Protocol

import discord

from commands.core.models import Action, ActionStyle

CUSTOM_ID_PREFIX = "holmbot:"
MAX_CUSTOM_ID = 100
MAX_LABEL = 80
MAX_BUTTONS = 25  # 5 rows of 5
STYLES = {
    ActionStyle.DEFAULT: discord.ButtonStyle.secondary,
    ActionStyle.PRIMARY: discord.ButtonStyle.primary,
    ActionStyle.DANGER: discord.ButtonStyle.danger,
}


class ButtonHandler(Protocol):
    """What the client offers a clicked button: run its command for the clicker."""

    on_button: Callable[[discord.Interaction[Any], str], Awaitable[None]]


class ActionButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"holmbot:(?P<command>.+)"
):
    """A button that runs `command` as the user who clicks it."""

    def __init__(
        self, command: str, label: str = "", style: ActionStyle = ActionStyle.DEFAULT
    ) -> None:
        button: discord.ui.Button[Any] = discord.ui.Button(
            label=(label or command)[:MAX_LABEL],
            style=STYLES[style],
            custom_id=CUSTOM_ID_PREFIX + command,
        )
        super().__init__(button)
        self.command = command

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: Match[str],
        /,
    ) -> ActionButton:
        return cls(match["command"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        client: ButtonHandler = interaction.client  # type: ignore[assignment]
        await client.on_button(interaction, self.command)


def view_of(actions: Iterable[Action]) -> discord.ui.View | None:
    """A persistent view with one button per action (None: no actions). Commands too long for
    a custom_id and repeated commands are left out."""
    view = discord.ui.View(timeout=None)
    seen: set[str] = set()
    for action in actions:
        if len(CUSTOM_ID_PREFIX + action.command) > MAX_CUSTOM_ID or action.command in seen:
            continue
        if len(seen) == MAX_BUTTONS:
            break
        seen.add(action.command)
        view.add_item(ActionButton(action.command, action.label, action.style))
    return view if seen else None
