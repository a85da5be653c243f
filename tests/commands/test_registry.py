"""Registry client against Debian's real docker-registry, and against failing servers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from commands.clients.registry import (
    RegistryClient,
    RegistryError,
    RegistryUnavailable,
    newest_first,
)
from commands.core.config import RegistryConfig
from sandbox.registry import RegistryProcess, build_image, seed_images
from tests.commands.servers import Serve, fault_app

IMAGES = {
    "nova": ["v1", "v1.1", "v2", "v2-broken", "v10", "latest"],
    "pulse": ["v1.0"],
    "gateway": ["v2.0.0"],
}


@pytest.fixture(scope="module")
def registry_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real registry for the module, seeded over its HTTP API."""
    process = RegistryProcess(Path(tmp_path_factory.mktemp("registry")))
    asyncio.run(process.start())
    try:
        asyncio.run(seed_images(process.url, IMAGES))
        yield process.url
    finally:
        asyncio.run(process.stop())


def client(url: str, timeout: float = 2.0) -> RegistryClient:
    return RegistryClient(RegistryConfig(url=url, timeout_seconds=timeout))


async def test_catalog_lists_repositories(registry_url: str) -> None:
    async with client(registry_url) as registry:
        assert await registry.catalog() == ["gateway", "nova", "pulse"]


async def test_tags_newest_first(registry_url: str) -> None:
    async with client(registry_url) as registry:
        assert await registry.tags("nova") == ["v10", "v2", "v2-broken", "v1.1", "v1", "latest"]


async def test_catalog_pages_are_followed(registry_url: str) -> None:
    config = RegistryConfig(url=registry_url, timeout_seconds=2.0)
    async with RegistryClient(config, page_size=2) as registry:  # the registry sends Link: next
        assert await registry.catalog() == ["gateway", "nova", "pulse"]


async def test_unknown_repository_has_no_tags(registry_url: str) -> None:
    async with client(registry_url) as registry:
        assert await registry.tags("ghost") == []


async def test_digest_of_a_tag_is_the_pushed_manifest_digest(registry_url: str) -> None:
    async with client(registry_url) as registry:
        assert await registry.digest("nova", "v2") == build_image("nova", "v2").digest
        assert await registry.digest("nova", "v9") is None
        assert await registry.digest("ghost", "v1") is None


def test_newest_first_ordering() -> None:
    tags = ["latest", "v1.2.0", "v1.10.0", "v1.9.3", "v2-rc1", "v2", "main", "15.4", "16.2"]
    assert newest_first(tags) == [
        "16.2",
        "15.4",
        "v2",
        "v2-rc1",
        "v1.10.0",
        "v1.9.3",
        "v1.2.0",
        "latest",
        "main",
    ]


async def test_registry_down_is_unavailable(refused_url: str) -> None:
    async with client(refused_url) as registry:
        with pytest.raises(
            RegistryUnavailable, match=re.escape(f"registry at {refused_url} is unreachable")
        ):
            await registry.tags("nova")


async def test_registry_500_is_unavailable(serve: Serve) -> None:
    url = await serve(fault_app("500"))
    async with client(url) as registry:
        with pytest.raises(RegistryUnavailable, match="answered 500"):
            await registry.digest("nova", "v2")


async def test_registry_hang_is_a_timeout(serve: Serve) -> None:
    url = await serve(fault_app("hang"))
    async with client(url, timeout=0.3) as registry:
        with pytest.raises(RegistryUnavailable, match=r"did not answer within 0\.3s"):
            await registry.catalog()


async def test_registry_needing_credentials_says_so(serve: Serve) -> None:
    url = await serve(fault_app("401"))
    async with client(url) as registry:
        with pytest.raises(RegistryError, match="needs credentials"):
            await registry.tags("nova")


async def test_malformed_answer_is_an_error(serve: Serve) -> None:
    url = await serve(fault_app("garbage"))
    async with client(url) as registry:
        with pytest.raises(RegistryError, match="malformed"):
            await registry.catalog()
