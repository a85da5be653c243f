"""Debian's real `docker-registry` on loopback, and seeding it with small real images.

`RegistryProcess` runs `/usr/bin/docker-registry serve CONFIG` on 127.0.0.1 with a free port and
filesystem storage under a state directory. `seed_images` pushes tiny linux/arm64 images over the
Registry HTTP API v2 (blob uploads, then a schema 2 manifest) and is idempotent: the same
(repository, tag) always produces the same bytes, so the same digests, and anything already
present is skipped.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import secrets
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

DEFAULT_BINARY = Path("/usr/bin/docker-registry")
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
IMAGE_CONFIG = "application/vnd.docker.container.image.v1+json"
LAYER_TAR_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
# Fixed so that a (repository, tag) always yields byte-identical blobs and manifests.
_EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z
_CREATED = "2024-01-01T00:00:00Z"


class RegistryNotInstalledError(RuntimeError):
    """The `docker-registry` binary is not on this machine."""


class RegistryStartError(RuntimeError):
    """The registry process exited or did not answer `GET /v2/` in time."""

    def __init__(self, message: str, *, port_taken: bool = False) -> None:
        super().__init__(message)
        self.port_taken = port_taken


class RegistryPushError(RuntimeError):
    """The registry refused part of an image push."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _resolve_binary(binary: Path | str | None) -> Path:
    if binary is not None:
        path = Path(binary)
    elif DEFAULT_BINARY.exists():
        path = DEFAULT_BINARY
    else:
        found = shutil.which("docker-registry")
        path = Path(found) if found else DEFAULT_BINARY
    if not path.is_file():
        raise RegistryNotInstalledError(
            f"docker-registry binary not found at {path}. The sandbox runs Debian's real registry "
            "(CNCF distribution 2.8); install it with: apt-get install docker-registry"
        )
    return path


def render_config(storage_dir: Path, port: int, secret: str) -> str:
    """The registry's YAML config: loopback only, filesystem storage, deletes on, quiet logs."""
    # JSON strings are valid YAML scalars, so paths with odd characters stay safe.
    return (
        "version: 0.1\n"
        "log:\n"
        "  level: warn\n"
        "  accesslog:\n"
        "    disabled: true\n"
        "storage:\n"
        "  filesystem:\n"
        f"    rootdirectory: {json.dumps(str(storage_dir))}\n"
        "  delete:\n"
        "    enabled: true\n"
        "  maintenance:\n"
        "    uploadpurging:\n"
        "      enabled: false\n"
        "http:\n"
        f'  addr: "127.0.0.1:{port}"\n'
        f"  secret: {json.dumps(secret)}\n"
        "  headers:\n"
        "    X-Content-Type-Options: [nosniff]\n"
    )


class RegistryProcess:
    """Debian's `docker-registry` as a child process on 127.0.0.1.

    Layout under `state_dir`: `config.yml`, `data/` (the blob store, kept across restarts) and
    `registry.log` (the process's own output, quoted in start errors).
    """

    def __init__(
        self,
        state_dir: Path | str,
        *,
        port: int | None = None,
        binary: Path | str | None = None,
        start_timeout: float = 10.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.state_dir = Path(state_dir)
        self._requested_port = port
        self._binary = binary
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def port(self) -> int:
        """The port the registry listens on (valid once started)."""
        if self._port is None:
            raise RuntimeError("registry not started")
        return self._port

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. `http://127.0.0.1:41234`."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT`, the form image references use (`HOST/NAME:TAG`)."""
        return f"127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.state_dir / "config.yml"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "registry.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    async def start(self) -> None:
        """Start the process and return once `GET /v2/` answers.

        With no fixed port, a port that another process takes between our probe and the
        registry's bind is retried with a new one.
        """
        if self._proc is not None:
            raise RuntimeError("registry already started")
        binary = _resolve_binary(self._binary)
        attempts = 1 if self._requested_port is not None else 3
        for attempt in range(attempts):
            port = self._requested_port or _free_port()
            try:
                await self._start_once(binary, port)
                return
            except RegistryStartError as exc:
                if not exc.port_taken or attempt == attempts - 1:
                    raise

    async def _start_once(self, binary: Path, port: int) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        storage = self.state_dir / "data"
        storage.mkdir(exist_ok=True)
        self.config_path.write_text(render_config(storage, port, secrets.token_hex(16)))
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            proc = subprocess.Popen(
                [str(binary), "serve", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._proc, self._port = proc, port
        try:
            await self._wait_ready()
        except BaseException:
            await self.stop()
            raise

    async def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        async with httpx.AsyncClient(timeout=1.0) as client:
            while True:
                code = self._proc.poll()
                if code is not None:
                    output = self._log_tail()
                    raise RegistryStartError(
                        f"docker-registry exited with code {code} during startup; "
                        f"log {self.log_path}:\n{output}",
                        port_taken="address already in use" in output,
                    )
                try:
                    response = await client.get(f"{self.url}/v2/")
                    if response.status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RegistryStartError(
                        f"docker-registry did not answer GET {self.url}/v2/ within "
                        f"{self.start_timeout:g}s; log {self.log_path}:\n{self._log_tail()}"
                    )
                await asyncio.sleep(0.02)

    def _log_tail(self, lines: int = 20) -> str:
        """The last lines this start wrote to the log (earlier runs' lines left out)."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                text = log.read().decode(errors="replace")
            return "\n".join(text.splitlines()[-lines:]) or "(empty)"
        except OSError:
            return "(no log)"

    async def stop(self) -> None:
        """Terminate the process, wait for it, and kill it if it outlives `stop_timeout`."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                await asyncio.to_thread(proc.wait, self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)

    async def __aenter__(self) -> RegistryProcess:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class SeedImage:
    """The blobs and manifest of one seeded image, all deterministic."""

    repository: str
    tag: str
    config: bytes
    layer: bytes
    manifest: bytes

    @property
    def config_digest(self) -> str:
        return _digest(self.config)

    @property
    def layer_digest(self) -> str:
        return _digest(self.layer)

    @property
    def digest(self) -> str:
        """The manifest digest the registry reports as `Docker-Content-Digest`."""
        return _digest(self.manifest)


def build_image(repository: str, tag: str) -> SeedImage:
    """A tiny linux/arm64 image whose single layer holds a file naming the repository and tag."""
    content = f"{repository}:{tag}\n".encode()
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("etc/holmos-release")
        info.size, info.mtime, info.mode = len(content), _EPOCH, 0o644
        tar.addfile(info, io.BytesIO(content))
    layer_tar = tar_buffer.getvalue()
    layer = gzip.compress(layer_tar, mtime=_EPOCH)
    config = json.dumps(
        {
            "architecture": "arm64",
            "os": "linux",
            "created": _CREATED,
            "config": {
                "Cmd": ["/bin/sh", "-c", "cat /etc/holmos-release"],
                "Labels": {"org.opencontainers.image.version": tag},
            },
            "rootfs": {"type": "layers", "diff_ids": [_digest(layer_tar)]},
            "history": [{"created": _CREATED, "created_by": f"holmos sandbox seed {tag}"}],
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_V2,
            "config": {"mediaType": IMAGE_CONFIG, "size": len(config), "digest": _digest(config)},
            "layers": [{"mediaType": LAYER_TAR_GZIP, "size": len(layer), "digest": _digest(layer)}],
        },
        separators=(",", ":"),
    ).encode()
    return SeedImage(repository, tag, config, layer, manifest)


def _check(response: httpx.Response, expected: int, what: str) -> None:
    if response.status_code != expected:
        raise RegistryPushError(
            f"{what}: {response.request.method} {response.request.url} answered "
            f"{response.status_code} (expected {expected}): {response.text[:300]}"
        )


async def _push_blob(
    client: httpx.AsyncClient, repository: str, data: bytes, *, may_exist: bool
) -> None:
    digest = _digest(data)
    if may_exist:
        head = await client.head(f"/v2/{repository}/blobs/{digest}")
        if head.status_code == 200:
            return
    started = await client.post(f"/v2/{repository}/blobs/uploads/")
    _check(started, 202, f"start upload to {repository}")
    location = httpx.URL(started.headers["Location"])
    if location.is_relative_url:
        location = client.base_url.join(location)
    put = await client.put(
        location.copy_merge_params({"digest": digest}),
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    _check(put, 201, f"upload blob {digest} to {repository}")


async def _existing_tags(client: httpx.AsyncClient, repository: str) -> set[str] | None:
    """The repository's tags, or None when the registry does not know the repository."""
    response = await client.get(f"/v2/{repository}/tags/list")
    if response.status_code == 404:
        return None
    _check(response, 200, f"list tags of {repository}")
    return set(response.json().get("tags") or ())


async def _push_image(
    client: httpx.AsyncClient, image: SeedImage, existing: set[str] | None
) -> None:
    manifest_url = f"/v2/{image.repository}/manifests/{image.tag}"
    if existing is not None and image.tag in existing:
        head = await client.head(manifest_url, headers={"Accept": MANIFEST_V2})
        if head.status_code == 200 and head.headers.get("Docker-Content-Digest") == image.digest:
            return
    # Blobs live per repository: in a repository the registry does not know, a HEAD is a
    # guaranteed 404, so it is only spent where a blob may already be present.
    may_exist = existing is not None
    await _push_blob(client, image.repository, image.config, may_exist=may_exist)
    await _push_blob(client, image.repository, image.layer, may_exist=may_exist)
    put = await client.put(
        manifest_url, content=image.manifest, headers={"Content-Type": MANIFEST_V2}
    )
    _check(put, 201, f"put manifest {image.repository}:{image.tag}")


async def seed_images(
    base_url: str, images: Mapping[str, Sequence[str]], *, concurrency: int = 8
) -> None:
    """Push every `repository: [tags]` to the registry at `base_url`.

    Idempotent: a tag that already points at the same manifest is left alone, a blob the
    repository already has is not uploaded again, and a re-run against the same storage (also
    after a registry restart) changes nothing. Raises `RegistryPushError` on a refused request.
    """
    semaphore = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def push_repository(repository: str, tags: Sequence[str]) -> None:
        async with semaphore:
            existing = await _existing_tags(client, repository)
        async with asyncio.TaskGroup() as group:
            for tag in dict.fromkeys(tags):
                group.create_task(push_tag(build_image(repository, tag), existing))

    async def push_tag(image: SeedImage, existing: set[str] | None) -> None:
        async with semaphore:
            await _push_image(client, image, existing)

    async with httpx.AsyncClient(base_url=base_url, timeout=30.0, limits=limits) as client:
        try:
            async with asyncio.TaskGroup() as group:
                for repository, tags in images.items():
                    group.create_task(push_repository(repository, tags))
        except* (RegistryPushError, httpx.HTTPError) as failures:
            # One clear error for the caller rather than a (nested) group of them.
            first: BaseException = failures
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from None
