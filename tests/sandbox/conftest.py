"""Fixtures of the sandbox suite: the API server alone, with the official client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.sandbox.served import Api, served_api


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with served_api(tmp_path) as running:
        yield running
