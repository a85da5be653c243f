"""The application (slash) commands: typed options, autocomplete, and sync only on change.

`/deploy`, `/logs`, `/rollback`, `/backup create|list|restore`, `/health`, and `/holmbot TEXT`
for every other command. Each becomes command text for the one shared parser
(`/deploy service:nova tag:v2` is `deploy nova v2`), run by `run(interaction, text)`.
Discord allows 200 command creates a day per guild, so the definitions are synced to the guild
only when their hash differs from the one kept in the state directory.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import shlex
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import discord
from discord import app_commands

from commands.core.parser import MAX_TAIL, SPECS
from commands.flow.layer import CommandLayer

log = logging.getLogger(__name__)

Runner = Callable[[discord.Interaction[Any], str], Awaitable[None]]
Choices = list[app_commands.Choice[str]]
AppCommand = app_commands.Command[Any, ..., Any] | app_commands.Group
MAX_CHOICES = 25
MAX_DESCRIPTION = 100
SERVICES_TTL = 30.0
MAX_REVISION = 2**31 - 1


def command_line(*words: str | None, **flags: str | int | bool | None) -> str:
    """Command text from a slash command's options: words in order, then `--flag value`."""
    parts = [str(word) for word in words if word is not None]
    for name, value in flags.items():
        if value is None or value is False:
            continue
        parts.extend([f"--{name}"] if value is True else [f"--{name}", str(value)])
    return shlex.join(parts)


def summary(*words: str) -> str:
    """A command's description from the parser's table, cut to Discord's 100 characters."""
    spec = next(spec for spec in SPECS if spec.words == words and spec.keyword is None)
    text = spec.description
    if len(text) <= MAX_DESCRIPTION:
        return text
    return text[: MAX_DESCRIPTION - 1].rsplit(" ", 1)[0] + "…"


def _matching(values: Sequence[str], current: str) -> Choices:
    """Values starting with what is typed first, then those containing it; at most 25."""
    typed = current.strip().lower()
    first = [v for v in values if v.lower().startswith(typed)]
    then = [v for v in values if typed in v.lower() and v not in first]
    return [app_commands.Choice(name=v[:100], value=v[:100]) for v in (first + then)][:MAX_CHOICES]


class Completions:
    """Autocomplete answers from the cluster, the registry and the backup service."""

    def __init__(self, layer: CommandLayer, timeout: float) -> None:
        self.layer = layer
        self.timeout = timeout  # an autocomplete answer is due within 3 s too
        self._services: tuple[float, list[str]] | None = None

    async def _services_now(self) -> list[str]:
        now = time.monotonic()
        if self._services is None or now - self._services[0] > SERVICES_TTL:
            names = sorted(await self.layer.clients.kube.deployment_names())
            self._services = (now, names)
        return self._services[1]

    async def _answer(self, what: str, values: Callable[[], Awaitable[Sequence[str]]]) -> Any:
        try:
            async with asyncio.timeout(self.timeout):
                return await values()
        except Exception as error:  # no suggestions beat a failed interaction
            log.warning("autocomplete of %s failed: %r", what, error)
            return []

    async def services(self, interaction: discord.Interaction[Any], current: str) -> Choices:
        """Deployment names in the bot's namespace."""
        return _matching(await self._answer("services", self._services_now), current)

    async def tags(self, interaction: discord.Interaction[Any], current: str) -> Choices:
        """The chosen service's tags in the registry, newest first."""
        service = getattr(interaction.namespace, "service", None)
        if not service:
            return []
        registry = self.layer.clients.registry
        return _matching(await self._answer("tags", lambda: registry.tags(service)), current)

    async def backups(self, interaction: discord.Interaction[Any], current: str) -> Choices:
        """Completed backups, newest first."""

        async def completed() -> list[str]:
            listing = await self.layer.clients.backup.list_backups()
            return [b.id for b in listing.backups if b.status == "completed"]

        return _matching(await self._answer("backups", completed), current)

    async def commands(self, interaction: discord.Interaction[Any], current: str) -> Choices:
        """Usage lines of the commands whose name starts like the text typed."""
        typed = current.strip()
        word = typed.split(" ", 1)[0].lower()
        usages = [spec.usage for spec in SPECS if spec.usage.startswith(word)]
        choices = [] if not typed or typed in usages else [typed]
        return _matching([*choices, *usages], "")


def build_commands(
    run: Runner, complete: Completions
) -> list[app_commands.Command[Any, ..., Any] | app_commands.Group]:
    """The slash commands, each running its command text through `run`."""

    @app_commands.command(name="deploy", description=summary("deploy"))
    @app_commands.describe(
        service="the deployment", tag="image tag (none: restart)", container="container name"
    )
    @app_commands.autocomplete(service=complete.services, tag=complete.tags)
    async def deploy(
        interaction: discord.Interaction[Any],
        service: str,
        tag: str | None = None,
        container: str | None = None,
    ) -> None:
        await run(interaction, command_line("deploy", service, tag, container=container))

    @app_commands.command(name="logs", description=summary("logs"))
    @app_commands.describe(
        service="the deployment",
        tail="lines per pod",
        previous="the previous container's log",
        container="container name",
        since="e.g. 30s, 5m, 2h",
        grep="only lines containing this text",
    )
    @app_commands.autocomplete(service=complete.services)
    async def logs(
        interaction: discord.Interaction[Any],
        service: str,
        tail: app_commands.Range[int, 1, MAX_TAIL] | None = None,
        previous: bool = False,
        container: str | None = None,
        since: str | None = None,
        grep: str | None = None,
    ) -> None:
        text = command_line(
            "logs",
            service,
            tail=tail,
            previous=previous,
            container=container,
            since=since,
            grep=grep,
        )
        await run(interaction, text)

    @app_commands.command(name="rollback", description=summary("rollback"))
    @app_commands.describe(
        service="the deployment",
        revision="revision to go back to (none: the previous one)",
        history="list the revisions instead",
    )
    @app_commands.autocomplete(service=complete.services)
    async def rollback(
        interaction: discord.Interaction[Any],
        service: str,
        revision: app_commands.Range[int, 1, MAX_REVISION] | None = None,
        history: bool = False,
    ) -> None:
        words = ("rollback", service, "history") if history else ("rollback", service)
        await run(interaction, command_line(*words, None if history else revision))

    backup = app_commands.Group(name="backup", description="Create, list and restore backups.")

    @backup.command(name="create", description=summary("backup", "create"))
    @app_commands.describe(name="a name for the backup")
    async def backup_create(interaction: discord.Interaction[Any], name: str | None = None) -> None:
        await run(interaction, command_line("backup", "create", name))

    @backup.command(name="list", description=summary("backup", "list"))
    async def backup_list(interaction: discord.Interaction[Any]) -> None:
        await run(interaction, command_line("backup", "list"))

    @backup.command(name="restore", description=summary("backup", "restore"))
    @app_commands.describe(backup="the backup id")
    @app_commands.autocomplete(backup=complete.backups)
    async def backup_restore(interaction: discord.Interaction[Any], backup: str) -> None:
        await run(interaction, command_line("backup", "restore", backup))

    @app_commands.command(name="health", description=summary("health"))
    @app_commands.describe(service="one service (none: the cluster)")
    @app_commands.autocomplete(service=complete.services)
    async def health(interaction: discord.Interaction[Any], service: str | None = None) -> None:
        await run(interaction, command_line("health", service))

    @app_commands.command(
        name="holmbot", description="Any holmbot command as text, e.g. status nova"
    )
    @app_commands.describe(text="the command, e.g. approve k3x9, scale nova 3, help")
    @app_commands.autocomplete(text=complete.commands)
    async def holmbot(interaction: discord.Interaction[Any], text: str) -> None:
        await run(interaction, text)

    return [deploy, logs, rollback, backup, health, holmbot]


def definitions_hash(tree: app_commands.CommandTree[Any], guild: discord.abc.Snowflake) -> str:
    """A hash of the guild's command definitions as they would be synced."""
    payload = [command.to_dict(tree) for command in tree.get_commands(guild=guild)]
    data = {"application": tree.client.application_id, "guild": guild.id, "commands": payload}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


async def sync_if_changed(
    tree: app_commands.CommandTree[Any], guild: discord.abc.Snowflake, marker: Path
) -> bool:
    """Sync the guild's commands when their definitions differ from the last synced ones
    (whose hash `marker` keeps); True when synced."""
    digest = definitions_hash(tree, guild)
    try:
        if marker.read_text().strip() == digest:
            return False
    except FileNotFoundError:
        pass
    await tree.sync(guild=guild)
    marker.parent.mkdir(parents=True, exist_ok=True)
    partial = marker.with_suffix(".tmp")
    partial.write_text(digest + "\n")
    partial.replace(marker)
    log.info("application commands synced to guild %s", guild.id)
    return True
