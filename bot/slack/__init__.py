"""holmbot on Slack: slash commands, mentions, Block Kit replies, buttons, reactions, live
progress, in Socket Mode or over HTTP, on slack-bolt's `AsyncApp`.

`create_adapter(config, layer, metrics)` gives the `ChatAdapter` that `holmbot run` starts;
`deploy/slack-app-manifest.yaml` creates the Slack app, and the README's "Slack" section says
how to set it up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.metrics import Metrics
    from bot.slack.adapter import SlackAdapter
    from commands.flow.layer import CommandLayer


def create_adapter(config: Any, layer: CommandLayer, metrics: Metrics) -> SlackAdapter:
    """The Slack adapter for `config` (a `BotConfig` with a `slack` section)."""
    from bot.slack.adapter import create

    return create(config, layer, metrics)
