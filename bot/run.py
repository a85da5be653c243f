"""`holmbot run`: the bot as a service. Every configured chat adapter in one asyncio loop, the
probes server, JSON logs, and a clean stop on SIGTERM.

Adapters are imported only when configured (a Slack-only bot never loads discord.py) and the
sandbox only with `--sandbox`. With no chat adapter configured the process exits 2 at once and
names the settings it lacks: a production pod without its token never starts a demo. The
adapters connect at the same time; `/ready` answers 200 once every one is connected.

On SIGTERM or SIGINT: the adapters stop taking commands and disconnect, the command layer
finishes its writes and closes (tracked operations and pending requests stay in the state file
for the next start), and the process exits 0.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
import time
from collections.abc import Mapping
from contextlib import AsyncExitStack
from pathlib import Path

from bot.adapter import ChatAdapter
from bot.lock import StateLock
from bot.logs import setup_logging
from bot.metrics import Metrics
from bot.probes import Probes
from bot.settings import BotConfig, load_bot_config

log = logging.getLogger("holmbot.run")
PLATFORM_PACKAGES = {"slack": "bot.slack", "discord": "bot.discord"}


class NothingToRun(Exception):
    """No chat adapter has its credentials; the message says which settings are missing."""


def configured_platforms(config: BotConfig) -> list[str]:
    """The chat platforms whose credentials are set, or `NothingToRun` naming what is missing."""
    platforms = [name for name in PLATFORM_PACKAGES if getattr(config, name).configured]
    if platforms:
        return platforms
    missing = [*config.slack.missing(), *config.discord.missing()]
    raise NothingToRun(
        "no chat platform is configured. Slack needs "
        + " and ".join(config.slack.missing())
        + "; Discord needs "
        + " and ".join(config.discord.missing())
        + f" ({len(missing)} settings, as environment variables or files in "
        "$HOLMBOT_SECRETS_DIR). To try holmbot locally without a chat app: "
        "holmbot console --sandbox"
    )


async def run_bot(
    config_path: Path | None, *, use_sandbox: bool = False, speed: float = 5.0
) -> None:
    """Run until SIGTERM/SIGINT. Raises NothingToRun, ConfigError, StateDirBusy ... at start."""
    started = time.monotonic()
    config = load_bot_config(config_path)
    platforms = configured_platforms(config)
    setup_logging(config.log.level, config.secrets())
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    async with AsyncExitStack() as stack:
        if use_sandbox:
            from sandbox.cluster import Sandbox  # only the demo loads the sandbox

            sandbox = await stack.enter_async_context(Sandbox(speed=speed))
            await sandbox.wait_started()
            log.info("sandbox running; kubectl: export KUBECONFIG=%s", sandbox.kubeconfig)
            cluster = load_bot_config(sandbox.bot_config_path)
            config = config.model_copy(
                update={
                    name: getattr(cluster, name)
                    for name in ("kubernetes", "registry", "backup", "health", "state_dir")
                }
            )
        lock = StateLock(config.state_dir).acquire()
        stack.callback(lock.release)
        from commands.flow.layer import CommandLayer

        layer = await CommandLayer.open(config)
        stack.push_async_callback(layer.close)
        metrics = Metrics()
        layer.audit_listeners.append(metrics.command_done)
        adapters: dict[str, ChatAdapter] = {}
        for name in platforms:
            package = importlib.import_module(PLATFORM_PACKAGES[name])
            adapters[name] = package.create_adapter(config, layer, metrics)
        probes = Probes(config.probes, layer, adapters, metrics)
        port = await probes.start()
        stack.push_async_callback(probes.close)
        log.info("probes listening on port %d", port, extra={"platform": ",".join(platforms)})
        for name, adapter in adapters.items():
            stack.push_async_callback(_closing(name, adapter))
        await _start_all(adapters)
        log.info("holmbot running (started in %.2f s)", time.monotonic() - started)
        await stopping.wait()
        log.info("stopping: closing the chat connections, then the command layer")
    log.info("stopped")


async def _start_all(adapters: Mapping[str, ChatAdapter]) -> None:
    """Start every adapter at once (each waits on its own platform's connection). If one
    fails, the others' starts are cancelled and its failure is raised as it was."""
    starts = [asyncio.ensure_future(adapter.start()) for adapter in adapters.values()]
    try:
        await asyncio.wait(starts, return_when=asyncio.FIRST_EXCEPTION)
    finally:  # a failure, or this start cancelled
        unfinished = [start for start in starts if not start.done()]
        for start in unfinished:
            start.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
    failures = [start.exception() for start in starts if not start.cancelled()]
    for failure in failures:
        if failure is not None:
            raise failure


def _closing(name: str, adapter: ChatAdapter):
    async def close() -> None:
        try:
            await adapter.close()
        except Exception:
            log.exception("the %s adapter did not close cleanly", name)

    return close
