"""HTTP health probes (runbook 5.1): a service's `/health` and `/ready`, and the aggregator.

Every probe is bounded by one total timeout (`asyncio.timeout`, not httpx's per-phase ones)
and the connection pool has no limit, so probing many services at once costs about one
timeout however many of them hang.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from commands.core.formatting import human_seconds, truncate

AGGREGATOR_PATH = "/api/health/all"
AGGREGATOR_SHARE = 0.8  # the aggregator probes each service with this share of our timeout,
AGGREGATOR_GRACE = 1.2  # and we allow it this factor of our timeout in all: room to answer


class ProbeFailed(Exception):
    """The health aggregator could not be asked; the message is for the user."""


@dataclass(frozen=True)
class ProbeResult:
    """One endpoint's answer, summed up for a person."""

    url: str
    ok: bool
    summary: str  # `200 (12 ms)`, `503: not ready: waiting for dependencies`, `no answer in 2s`


@dataclass(frozen=True)
class Verdict:
    """The health aggregator's view: overall status and the services it found failing."""

    status: str
    checked: int
    failing: dict[str, str] = field(default_factory=dict)  # service -> what is wrong


@functools.cache
def _tls() -> ssl.SSLContext:
    """The TLS settings of every probe client, made once: loading the CA bundle costs tens of
    milliseconds of CPU on the event loop, which 50 `/health` commands at once felt."""
    return httpx.create_ssl_context()


@asynccontextmanager
async def probe_client() -> AsyncIterator[httpx.AsyncClient]:
    """A client for many concurrent probes: no pool limit, so no probe waits for another."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=10)
    async with httpx.AsyncClient(limits=limits, follow_redirects=True, verify=_tls()) as client:
        yield client


def _reason(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return truncate(response.text.strip(), 120) or None
    if isinstance(body, dict):
        value = body.get("reason") or body.get("error") or body.get("status")
        return str(value) if value else None
    return None


async def probe(client: httpx.AsyncClient, url: str, timeout: float) -> ProbeResult:
    """GET `url` within `timeout` seconds in total; 2xx is healthy."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            response = await client.get(url)
    except TimeoutError:
        return ProbeResult(url, False, f"no answer within {human_seconds(timeout)}")
    except httpx.HTTPError as exc:
        return ProbeResult(url, False, f"unreachable ({str(exc) or type(exc).__name__})")
    millis = (time.monotonic() - started) * 1000
    if response.is_success:
        return ProbeResult(url, True, f"{response.status_code} ({millis:.0f} ms)")
    reason = _reason(response)
    return ProbeResult(url, False, f"{response.status_code}" + (f": {reason}" if reason else ""))


def aggregator_endpoint(url: str) -> str:
    """The aggregator's `/api/health/all` URL, given its base URL or that URL itself."""
    url = url.rstrip("/")
    return url if url.endswith(AGGREGATOR_PATH) else url + AGGREGATOR_PATH


async def aggregator_verdict(client: httpx.AsyncClient, url: str, timeout: float) -> Verdict:
    """Ask the aggregator; raises `ProbeFailed` when it does not give a usable answer."""
    endpoint = aggregator_endpoint(url)
    try:
        async with asyncio.timeout(timeout * AGGREGATOR_GRACE):
            wanted = {"timeout": f"{timeout * AGGREGATOR_SHARE:g}"}
            response = await client.get(endpoint, params=wanted)
        body: Any = response.json()
    except TimeoutError:
        limit = human_seconds(timeout * AGGREGATOR_GRACE)
        raise ProbeFailed(f"health aggregator did not answer within {limit}") from None
    except httpx.HTTPError as exc:
        raise ProbeFailed(f"health aggregator at {endpoint} is unreachable ({exc})") from None
    except ValueError:
        body = None
    if not response.is_success or not isinstance(body, dict):
        raise ProbeFailed(f"health aggregator at {endpoint} answered {response.status_code}")
    services = body.get("services") if isinstance(body.get("services"), dict) else {}
    failing = {}
    for name, result in sorted(services.items()):
        if isinstance(result, dict) and result.get("status") not in ("healthy", "ok"):
            detail = result.get("reason") or result.get("code")
            failing[name] = str(result.get("status")) + (f" ({detail})" if detail else "")
    return Verdict(str(body.get("status", "unknown")), len(services), failing)
