"""holmbot on Discord: slash and prefix commands, embeds, buttons, reactions, live progress.

`create_adapter(config, layer, metrics)` gives the `ChatAdapter` that `holmbot run` starts;
docs/discord.md describes the set-up on Discord's side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.discord.adapter import DiscordAdapter
    from bot.metrics import Metrics
    from bot.settings import BotConfig
    from commands.flow.layer import CommandLayer


def create_adapter(
    config: BotConfig, layer: CommandLayer, metrics: Metrics, **timings: Any
) -> DiscordAdapter:
    """The Discord adapter for `config`'s `discord` section; `timings` override
    `bot.discord.options.Timings`."""
    from bot.discord.adapter import DiscordAdapter
    from bot.discord.options import Timings

    return DiscordAdapter(config.discord, layer, metrics, config.state_dir, Timings(**timings))
