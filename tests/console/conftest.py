"""Fixtures for the console suite: the sandbox's own bot config, and a console driving it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from commands.core.config import Config, load_config
from sandbox.cluster import Sandbox
from tests.console.driver import PROBE_TIMEOUT, Console, open_console, with_changes


@pytest.fixture
def bot_config(sandbox: Sandbox, tmp_path: Path) -> Config:
    """The config `holmbot sandbox` writes, with test-sized probe and rollout timeouts."""
    return with_changes(
        load_config(sandbox.bot_config_path),
        health={"probe_timeout_seconds": PROBE_TIMEOUT},
        rollout={"timeout_seconds": 60.0, "health_failure_seconds": 5.0, "verify_seconds": 0},
    )


@pytest.fixture
async def console(bot_config: Config) -> AsyncIterator[Console]:
    """A console session on the sandbox, as `holmbot console --config` runs it."""
    async with open_console(bot_config) as running:
        yield running
