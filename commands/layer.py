"""The one flow every command follows: parse, authorize, approval gate, execute.

`CommandLayer.handle` takes an `Invocation` from any adapter and returns an `Outcome`: a
reply now and, for long operations, a stream of progress ending in a final result.
"""

from __future__ import annotations

import logging
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass

from commands.backup import BackupClient, run_backup_command
from commands.config import Config
from commands.health import show_health
from commands.kube import Kube
from commands.logs import show_logs
from commands.models import Invocation, Outcome, Reply, Tone
from commands.parser import (
    BackupCreateCommand,
    BackupListCommand,
    BackupRestoreCommand,
    BaseCommand,
    DeployCommand,
    HealthCommand,
    HelpCommand,
    HistoryCommand,
    LogsCommand,
    ParseError,
    RestartCommand,
    RollbackCommand,
    ScaleCommand,
    StatusCommand,
    help_reply,
    parse_command,
)
from commands.registry import RegistryClient
from commands.rollout import Rollouts
from commands.tracker import Tracker

log = logging.getLogger(__name__)


@dataclass
class Clients:
    """The outside services the commands talk to, opened once per process."""

    config: Config
    kube: Kube
    registry: RegistryClient
    backup: BackupClient
    tracker: Tracker
    rollouts: Rollouts


class CommandLayer:
    """Platform-free command handling shared by every chat adapter."""

    def __init__(self, clients: Clients, exits: AsyncExitStack) -> None:
        self.clients = clients
        self._exits = exits

    @classmethod
    async def open(cls, config: Config) -> CommandLayer:
        """Connect to Kubernetes, the registry and the backup service as configured."""
        async with AsyncExitStack() as exits:
            kube = await Kube.from_config(config.kubernetes, config.namespace)
            exits.push_async_callback(kube.close)
            registry = RegistryClient(config.registry)
            exits.push_async_callback(registry.aclose)
            backup = BackupClient(config.backup)
            exits.push_async_callback(backup.aclose)
            tracker = Tracker(kube, config.rollout)
            exits.push_async_callback(tracker.close)
            rollouts = Rollouts(
                kube, tracker, registry_host=config.registry.host, tags=registry.tags
            )
            clients = Clients(config, kube, registry, backup, tracker, rollouts)
            return cls(clients, exits.pop_all())

    async def close(self) -> None:
        """Stop tracking and close every client."""
        await self._exits.aclose()

    async def handle(self, invocation: Invocation) -> Outcome:
        """Run one invocation; never raises for anything a user typed or a service did."""
        started = time.monotonic()
        try:
            command = parse_command(invocation.text)
        except ParseError as error:
            return Outcome(error.reply())
        try:
            outcome = await self.execute(command, invocation)
        except Exception:
            log.exception("command failed: %s", command.action)
            outcome = Outcome(
                Reply(
                    title=f"{command.action} failed unexpectedly; see the bot's log",
                    tone=Tone.ERROR,
                )
            )
        log.info(
            "command action=%s service=%s user=%s platform=%s channel=%s ms=%d",
            command.action,
            command.service,
            invocation.user.key,
            invocation.platform,
            invocation.channel,
            (time.monotonic() - started) * 1000,
        )
        return outcome

    async def execute(self, command: BaseCommand, invocation: Invocation) -> Outcome:
        """Run an authorized command as the invocation's user."""
        clients, who, platform = self.clients, invocation.user.key, str(invocation.platform)
        rollouts = clients.rollouts
        match command:
            case DeployCommand(tag=None):
                return await rollouts.restart(command.service, who=who, platform=platform)
            case DeployCommand(tag=str(tag)):
                return await rollouts.deploy(
                    command.service, tag, container=command.container, who=who, platform=platform
                )
            case RestartCommand():
                return await rollouts.restart(command.service, who=who, platform=platform)
            case ScaleCommand():
                return await rollouts.scale(
                    command.service, command.replicas, who=who, platform=platform
                )
            case RollbackCommand():
                return await rollouts.rollback(
                    command.service, command.revision or 0, who=who, platform=platform
                )
            case StatusCommand():
                return await rollouts.status(command.service)
            case HistoryCommand():
                return await rollouts.history(command.service)
            case LogsCommand():
                return await show_logs(command, clients.kube)
            case BackupCreateCommand() | BackupListCommand() | BackupRestoreCommand():
                return await run_backup_command(command, clients.backup)
            case HealthCommand():
                return await show_health(command, clients.kube, clients.config)
            case HelpCommand():
                return Outcome(help_reply(command))
        return Outcome(Reply(title=f"{command.action} is not available yet", tone=Tone.WARNING))
