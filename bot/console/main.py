"""`holmbot console`: the command layer on a terminal, against a cluster or the sandbox."""

from __future__ import annotations

import asyncio
import signal
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TextIO

from bot.console.session import (
    CHANNEL,
    ConsoleSession,
    NotAConsoleUser,
    impersonation_refusal,
    read_lines,
)
from commands.core.config import load_config
from commands.core.models import Invocation, Platform, User
from commands.flow.layer import CommandLayer

DEFAULT_USER = "console:operator"
PROMPT = "holmbot> "


async def run_console(
    config_path: Path | None,
    *,
    use_sandbox: bool,
    default_user: User,
    speed: float = 5.0,
    source: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
) -> None:
    """Read commands until input ends, then wait for tracked operations and stop.

    SIGTERM cancels the console, so everything it started is stopped on the way out.
    """
    main = asyncio.current_task()
    assert main is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    async with AsyncExitStack() as stack:
        if use_sandbox:
            from sandbox.cluster import Sandbox  # only the demo loads the sandbox

            sandbox = await stack.enter_async_context(Sandbox(speed=speed))
            print(f"sandbox running; kubectl: export KUBECONFIG={sandbox.kubeconfig}", file=out)
            await sandbox.wait_started()
            config_path = sandbox.bot_config_path
        config = load_config(config_path)
        layer = await CommandLayer.open(config)
        stack.push_async_callback(layer.close)
        if default_user.platform is not Platform.CONSOLE and not use_sandbox:
            reason = impersonation_refusal(default_user)
            invocation = Invocation(
                user=default_user, channel=CHANNEL, text=f"--as {default_user.key}"
            )
            await layer.refuse(invocation, reason)  # audited
            raise NotAConsoleUser(reason)
        session = ConsoleSession(
            layer, default_user, out, config.state_dir / "attachments", any_user=use_sandbox
        )
        stack.push_async_callback(session.close)
        prompt = PROMPT if source.isatty() else None
        async for line in read_lines(source, prompt, out):
            await session.run_line(line)
        await session.wait()
