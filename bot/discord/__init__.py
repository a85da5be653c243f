"""holmbot on Discord: slash and prefix commands, embeds, buttons, reactions, live progress.

`create_adapter(config, layer, metrics)` gives the `ChatAdapter` that `holmbot run` starts;
docs/discord.md describes the set-up on Discord's side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.discord.adapter import DiscordAdapter
    from bot.discord.client import Metrics
    from commands.flow.layer import CommandLayer


def create_adapter(config: Any, layer: CommandLayer, metrics: Metrics) -> DiscordAdapter:
    """The Discord adapter for `config` (a `BotConfig` with a `discord` section)."""
    from bot.discord.adapter import DiscordAdapter
    from bot.discord.options import DiscordOptions

    return DiscordAdapter(DiscordOptions.of(config.discord), layer, metrics, config.state_dir)
