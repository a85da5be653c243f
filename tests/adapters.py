"""A chat adapter started on a command layer as `holmbot run` starts it, for the Slack and
Discord suites: the layer, the adapter, and the process's metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Generic, Protocol, TypeVar

from bot.metrics import Metrics
from bot.settings import BotConfig
from commands.flow.layer import CommandLayer


class Startable(Protocol):
    async def start(self) -> None: ...
    async def close(self) -> None: ...


A = TypeVar("A", bound=Startable)


class ChatBot(Generic[A]):
    """A command layer and one chat adapter on it."""

    def __init__(self, layer: CommandLayer, adapter: A, metrics: Metrics) -> None:
        self.layer = layer
        self.adapter = adapter
        self.metrics = metrics

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


@asynccontextmanager
async def started(
    config: BotConfig, create: Callable[[CommandLayer, Metrics], A]
) -> AsyncIterator[tuple[CommandLayer, A, Metrics]]:
    """The layer opened on `config`, commands counted in the metrics, and the adapter `create`
    makes started on it; both closed after."""
    layer = await CommandLayer.open(config)
    metrics = Metrics()
    layer.audit_listeners.append(metrics.command_done)
    try:
        adapter = create(layer, metrics)
        try:
            await adapter.start()
            yield layer, adapter, metrics
        finally:
            await adapter.close()
    finally:
        await layer.close()
