"""The sandbox registry: Debian's real docker-registry on loopback, seeded over HTTP API v2."""

from __future__ import annotations

import asyncio
import gzip
import io
import socket
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandbox.registry import (
    MANIFEST_V2,
    RegistryNotInstalledError,
    RegistryProcess,
    RegistryStartError,
    build_image,
    seed_images,
)

IMAGES = {
    "holm-api": ["v1.0.0", "v1.1.0", "latest"],
    "holm-web": ["v2.3.1", "latest"],
    "backup-storage": ["v0.9.0"],
}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """One registry for the read-only tests; the process outlives any single event loop."""
    registry = RegistryProcess(tmp_path_factory.mktemp("registry"))
    asyncio.run(registry.start())
    try:
        asyncio.run(seed_images(registry.url, IMAGES))
        yield registry
    finally:
        asyncio.run(registry.stop())


def _blob_files(state_dir: Path) -> set[Path]:
    blobs = state_dir / "data" / "docker" / "registry" / "v2" / "blobs"
    return {p.relative_to(blobs) for p in blobs.rglob("*") if p.is_file()}


async def test_missing_binary_says_how_to_install(tmp_path: Path) -> None:
    registry = RegistryProcess(tmp_path, binary=tmp_path / "no-such-registry")
    with pytest.raises(RegistryNotInstalledError, match=r"apt-get install docker-registry"):
        await registry.start()


async def test_port_in_use_is_a_clear_start_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        registry = RegistryProcess(tmp_path, port=taken.getsockname()[1])
        with pytest.raises(RegistryStartError, match="address already in use"):
            await registry.start()
    assert not registry.running


async def test_catalog_lists_seeded_repositories(seeded: RegistryProcess) -> None:
    async with httpx.AsyncClient(base_url=seeded.url) as client:
        response = await client.get("/v2/_catalog")
    assert response.status_code == 200
    assert response.json() == {"repositories": sorted(IMAGES)}


async def test_tags_list_after_seeding(seeded: RegistryProcess) -> None:
    async with httpx.AsyncClient(base_url=seeded.url) as client:
        for repository, tags in IMAGES.items():
            response = await client.get(f"/v2/{repository}/tags/list")
            assert response.status_code == 200
            assert response.json() == {"name": repository, "tags": sorted(tags)}
        unknown = await client.get("/v2/no-such-service/tags/list")
    assert unknown.status_code == 404
    assert unknown.json()["errors"][0]["code"] == "NAME_UNKNOWN"


async def test_head_manifest_gives_digest_with_accept_header(seeded: RegistryProcess) -> None:
    async with httpx.AsyncClient(base_url=seeded.url) as client:
        head = await client.head("/v2/holm-api/manifests/v1.1.0", headers={"Accept": MANIFEST_V2})
        missing_tag = await client.head(
            "/v2/holm-api/manifests/v9.9.9", headers={"Accept": MANIFEST_V2}
        )
        bare = client.build_request("HEAD", "/v2/holm-api/manifests/v1.1.0")
        del bare.headers["Accept"]  # httpx sends Accept: */* unless told otherwise
        without_accept = await client.send(bare)
    assert head.status_code == 200
    assert head.headers["Docker-Content-Digest"] == build_image("holm-api", "v1.1.0").digest
    assert head.headers["Content-Type"] == MANIFEST_V2
    assert missing_tag.status_code == 404
    # What Debian's registry 2.8 does without an Accept header: it converts to a schema 1
    # manifest on the fly, whose digest is not the image's digest. Clients must send Accept.
    assert without_accept.headers["Content-Type"].startswith(
        "application/vnd.docker.distribution.manifest.v1"
    )
    assert without_accept.headers["Docker-Content-Digest"] != head.headers["Docker-Content-Digest"]


async def test_seeded_images_are_real_arm64_images(seeded: RegistryProcess) -> None:
    accept = {"Accept": MANIFEST_V2}
    async with httpx.AsyncClient(base_url=seeded.url) as client:
        manifest = (await client.get("/v2/holm-web/manifests/v2.3.1", headers=accept)).json()
        config = (await client.get(f"/v2/holm-web/blobs/{manifest['config']['digest']}")).json()
        layer = await client.get(f"/v2/holm-web/blobs/{manifest['layers'][0]['digest']}")
        other = await client.head("/v2/holm-web/manifests/latest", headers=accept)
    assert manifest["mediaType"] == MANIFEST_V2
    assert (config["architecture"], config["os"]) == ("arm64", "linux")
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer.content))) as tar:
        member = tar.extractfile("etc/holmos-release")
        assert member is not None
        assert member.read() == b"holm-web:v2.3.1\n"
    assert other.headers["Docker-Content-Digest"] != build_image("holm-web", "v2.3.1").digest


async def test_reseeding_after_restart_changes_nothing(tmp_path: Path) -> None:
    first = {"holm-api": ["v1.0.0", "v1.1.0"], "holm-web": ["latest"]}
    async with RegistryProcess(tmp_path) as registry:
        await seed_images(registry.url, first)
        async with httpx.AsyncClient(base_url=registry.url) as client:
            before = await client.head(
                "/v2/holm-api/manifests/v1.0.0", headers={"Accept": MANIFEST_V2}
            )
    blobs_before = _blob_files(tmp_path)
    assert not registry.running

    async with RegistryProcess(tmp_path) as registry:
        await seed_images(registry.url, first)
        assert _blob_files(tmp_path) == blobs_before  # nothing uploaded twice
        await seed_images(registry.url, {"holm-api": ["v1.2.0"]})  # a new tag is added
        async with httpx.AsyncClient(base_url=registry.url) as client:
            after = await client.head(
                "/v2/holm-api/manifests/v1.0.0", headers={"Accept": MANIFEST_V2}
            )
            tags = (await client.get("/v2/holm-api/tags/list")).json()["tags"]
            catalog = (await client.get("/v2/_catalog")).json()["repositories"]
    assert after.headers["Docker-Content-Digest"] == before.headers["Docker-Content-Digest"]
    assert tags == ["v1.0.0", "v1.1.0", "v1.2.0"]
    assert catalog == ["holm-api", "holm-web"]
    assert len(_blob_files(tmp_path)) > len(blobs_before)


async def test_stopped_registry_no_longer_answers(tmp_path: Path) -> None:
    registry = RegistryProcess(tmp_path)
    await registry.start()
    url = registry.url
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{url}/v2/")).json() == {}
        await registry.stop()
        await registry.stop()  # stopping twice is harmless
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{url}/v2/")
