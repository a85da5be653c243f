"""Docker Registry HTTP API v2 client: repositories, tags, manifest digests.

Tags are ordered "newest first" by version, since the tags API carries no dates: a tag is read
as an optional `v`, dot-separated numbers and an optional suffix (`v1.3.0`, `15.6`,
`v2-broken`). Higher numbers are newer; a plain release is newer than the same numbers with a
suffix (`v2` > `v2-rc1`); tags that are not versions (`latest`, `main`) come after all
versions, alphabetically.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import httpx

from commands.core.config import RegistryConfig

MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)
PAGE_SIZE = 1000
_VERSION = re.compile(r"[vV]?(\d+(?:\.\d+)*)(?:[-+_.]?(.*))?")


class RegistryError(Exception):
    """The registry answered, but not with what was asked for."""


class RegistryUnavailable(RegistryError):
    """The registry is down, too slow, or failing (5xx)."""


def version_key(tag: str) -> tuple[Any, ...]:
    """Sort key, ascending from oldest: versions by number (release above suffixed), then others."""
    match = _VERSION.fullmatch(tag)
    if match is None:
        return (0, (), 0, tag)
    numbers = tuple(int(part) for part in match.group(1).split("."))
    suffix = match.group(2) or ""
    return (1, numbers, 0 if suffix else 1, suffix)


def newest_first(tags: Iterable[str]) -> list[str]:
    """Versions from newest to oldest, then non-version tags in name order."""
    ordered = sorted(tags, key=version_key, reverse=True)
    versions = [tag for tag in ordered if version_key(tag)[0] == 1]
    return versions + sorted(tag for tag in ordered if version_key(tag)[0] == 0)


class RegistryClient:
    """Async client for one registry; use as `async with RegistryClient(config) as registry`."""

    def __init__(self, config: RegistryConfig, *, page_size: int = PAGE_SIZE) -> None:
        self.url = config.url
        self.timeout = config.timeout_seconds
        self.page_size = page_size
        self._http = httpx.AsyncClient(base_url=config.url, timeout=config.timeout_seconds)

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        try:
            response = await self._http.request(method, path, headers=headers)
        except httpx.TimeoutException:
            raise RegistryUnavailable(
                f"registry at {self.url} did not answer within {self.timeout:g}s"
            ) from None
        except httpx.TransportError as exc:
            detail = str(exc) or type(exc).__name__
            raise RegistryUnavailable(f"registry at {self.url} is unreachable: {detail}") from None
        if response.status_code >= 500:
            raise RegistryUnavailable(
                f"registry at {self.url} answered {response.status_code} for {method} {path}"
            )
        if response.status_code in (401, 403):
            raise RegistryError(
                f"registry at {self.url} refused {method} {path} ({response.status_code}); "
                "it needs credentials holmbot does not have"
            )
        return response

    def _json(self, response: httpx.Response, what: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise RegistryError(f"registry at {self.url} sent a malformed {what} response")
        return body

    async def _paged(self, path: str, key: str) -> list[str] | None:
        """Follow `Link: <...>; rel="next"` pages; None when the first page is a 404."""
        items: list[str] = []
        next_path: str | None = f"{path}?n={self.page_size}"
        while next_path:
            response = await self._request("GET", next_path)
            if response.status_code == 404 and not items:
                return None
            if response.status_code != 200:
                raise RegistryError(
                    f"registry at {self.url} answered {response.status_code} for GET {next_path}"
                )
            items.extend(self._json(response, key).get(key) or [])
            next_link = response.links.get("next", {}).get("url")
            next_path = str(next_link) if next_link else None
        return items

    async def catalog(self) -> list[str]:
        """Every repository name, sorted."""
        return sorted(await self._paged("/v2/_catalog", "repositories") or [])

    async def tags(self, repository: str) -> list[str]:
        """The repository's tags, newest first; none when the repository is unknown."""
        return newest_first(await self._paged(f"/v2/{repository}/tags/list", "tags") or [])

    async def digest(self, repository: str, reference: str) -> str | None:
        """The manifest digest of a tag (or digest), None when it does not exist."""
        response = await self._request(
            "HEAD",
            f"/v2/{repository}/manifests/{reference}",
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        if response.status_code == 404:
            return None
        digest = response.headers.get("Docker-Content-Digest")
        if response.status_code != 200 or not digest:
            raise RegistryError(
                f"registry at {self.url} answered {response.status_code} without a digest "
                f"for {repository}:{reference}"
            )
        return digest
