"""The staged cluster of `sandbox.staging`, with the bot's client and config pointed at it."""

from __future__ import annotations

from dataclasses import dataclass

from commands.clients.kube import Kube
from commands.core.config import Config
from sandbox.staging import NAMESPACE, Container, Stage

__all__ = ["NAMESPACE", "Container", "World"]


@dataclass(kw_only=True)
class World(Stage):
    """A `Stage` and the bot's view of it."""

    kube: Kube
    config: Config
    health_url: str  # the health app: services' endpoints and the aggregator
