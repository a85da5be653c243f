"""Health, readiness and metrics endpoints of every sandbox service, plus the health aggregator.

One aiohttp application on one port serves, for each service on a `HealthBoard`:

- `GET /svc/{service}/health`, `/ready` and `/metrics` (Prometheus text format), answering as
  the service's current behaviour says: `ok`, `slow` (after a delay), `hang` (never, until the
  client gives up), `failing` (`/health` and `/ready` 503 with a JSON reason) or `not_ready`
  (`/ready` 503). The board can be changed at any time; the next request sees the change.
- `GET /api/health/all` (runbook 5.1): probes every service's `/health` concurrently, each
  with its own timeout, so hanging services cost one timeout in total, not one each.
- `GET /health`: the aggregator's own liveness.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

SERVICE_PREFIX = "/svc"
AGGREGATOR_PATH = "/api/health/all"
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_TICK = 0.05  # how often a waiting request checks for a gone client, shutdown or a new behaviour
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Behaviour(StrEnum):
    """How a service's endpoints answer."""

    OK = "ok"
    SLOW = "slow"
    HANG = "hang"
    FAILING = "failing"
    NOT_READY = "not_ready"


DEFAULT_REASONS = {
    Behaviour.FAILING: "health check failed: dependency check returned an error",
    Behaviour.NOT_READY: "not ready: waiting for dependencies",
}


def service_base_url(base: str, service: str) -> str:
    """Where a service's endpoints live: append `/health`, `/ready` or `/metrics`."""
    return f"{base.rstrip('/')}{SERVICE_PREFIX}/{quote(service, safe='')}"


def service_health_url(base: str, service: str) -> str:
    """The URL of a service's `/health`."""
    return f"{service_base_url(base, service)}/health"


def service_url_template(base: str) -> str:
    """`http://HOST:PORT/svc/{service}`: a service's base URL with a `{service}` placeholder."""
    return f"{base.rstrip('/')}{SERVICE_PREFIX}/{{service}}"


def aggregator_url(base: str) -> str:
    """The URL of the health aggregator's `GET /api/health/all`."""
    return f"{base.rstrip('/')}{AGGREGATOR_PATH}"


@dataclass(frozen=True)
class ServiceHealth:
    """One service's current behaviour; `delay` is for `slow`, `reason` for the 503 bodies."""

    behaviour: Behaviour = Behaviour.OK
    reason: str | None = None
    delay: float | None = None


class HealthBoard:
    """Which services exist and how each behaves; shared by the app and whoever drives it."""

    def __init__(
        self,
        services: Mapping[str, Behaviour | str] | Iterable[str] = (),
        *,
        slow_seconds: float = 1.0,
    ) -> None:
        self.slow_seconds = slow_seconds
        self.most_hanging_at_once = 0  # the most requests held by hanging services at one time
        self._hanging = 0
        self._services: dict[str, ServiceHealth] = {}
        items = services.items() if isinstance(services, Mapping) else ((s, "ok") for s in services)
        for name, behaviour in items:
            self.set(name, behaviour)

    def set(
        self,
        service: str,
        behaviour: Behaviour | str = Behaviour.OK,
        *,
        reason: str | None = None,
        delay: float | None = None,
    ) -> None:
        """Add `service` or change how it behaves from the next request on."""
        try:
            parsed = Behaviour(str(behaviour))
        except ValueError:
            options = ", ".join(b.value for b in Behaviour)
            raise ValueError(f"unknown behaviour {behaviour!r}; one of: {options}") from None
        self._services[service] = ServiceHealth(parsed, reason, delay)

    def remove(self, service: str) -> None:
        """Forget a service (its endpoints answer 404, the aggregator stops probing it)."""
        self._services.pop(service, None)

    def get(self, service: str) -> ServiceHealth | None:
        return self._services.get(service)

    def behaviour(self, service: str) -> Behaviour | None:
        state = self._services.get(service)
        return None if state is None else state.behaviour

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Count a request held by a hanging service while the block runs."""
        self._hanging += 1
        self.most_hanging_at_once = max(self.most_hanging_at_once, self._hanging)
        try:
            yield
        finally:
            self._hanging -= 1

    @property
    def services(self) -> list[str]:
        """Service names, sorted."""
        return sorted(self._services)

    def __contains__(self, service: object) -> bool:
        return service in self._services

    def __len__(self) -> int:
        return len(self._services)


@dataclass
class _Metrics:
    started: float = field(default_factory=time.time)
    requests: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    durations: dict[str, list[float]] = field(default_factory=dict)

    def observe(self, service: str, endpoint: str, code: int, seconds: float) -> None:
        self.requests[(service, endpoint, code)] += 1
        samples = self.durations.setdefault(service, [])
        samples.append(seconds)
        del samples[:-1000]  # enough for a histogram, bounded memory


_BOARD = web.AppKey("board", HealthBoard)
_METRICS = web.AppKey("metrics", _Metrics)
_STOPPING = web.AppKey("stopping", asyncio.Event)
_SESSION = web.AppKey("session", aiohttp.ClientSession)
_TIMEOUT = web.AppKey("probe_timeout", float)


def build_health_app(board: HealthBoard, *, probe_timeout: float = 2.0) -> web.Application:
    """The services' endpoints and the aggregator, driven by `board`.

    `probe_timeout` is the aggregator's per-service timeout in seconds (a request may lower or
    raise it with `?timeout=SECONDS`, up to 30).
    """
    app = web.Application()
    app[_BOARD] = board
    app[_METRICS] = _Metrics()
    app[_STOPPING] = asyncio.Event()
    app[_TIMEOUT] = probe_timeout
    app.router.add_get("/health", _own_health)
    app.router.add_get(AGGREGATOR_PATH, _aggregate)
    for endpoint in ("health", "ready", "metrics"):
        app.router.add_get(f"{SERVICE_PREFIX}/{{service}}/{endpoint}", _service_endpoint)
    app.cleanup_ctx.append(_client_session)

    async def on_shutdown(app: web.Application) -> None:
        app[_STOPPING].set()  # releases hanging and slow requests so shutdown is not held up

    app.on_shutdown.append(on_shutdown)
    return app


async def _client_session(app: web.Application) -> AsyncIterator[None]:
    # No connection limit: a pool that waits for hung connections would stack timeouts.
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        app[_SESSION] = session
        yield


async def _own_health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _wait(request: web.Request, service: str, seconds: float | None) -> bool:
    """Wait `seconds` (None: while the service hangs). False if nobody should be answered.

    Returns early, False, when the client has gone or the app is shutting down; a hang also
    ends when the board no longer says `hang` (the service recovered), then True.
    """
    board, stopping = request.app[_BOARD], request.app[_STOPPING]
    deadline = None if seconds is None else time.monotonic() + seconds
    while True:
        if stopping.is_set() or request.transport is None or request.transport.is_closing():
            return False
        if deadline is None:
            if board.behaviour(service) is not Behaviour.HANG:
                return True
            pause = _TICK
        else:
            pause = min(_TICK, deadline - time.monotonic())
            if pause <= 0:
                return True
        await asyncio.sleep(pause)


async def _service_endpoint(request: web.Request) -> web.StreamResponse:
    started = time.perf_counter()
    service = request.match_info["service"]
    endpoint = request.path.rsplit("/", 1)[1]
    board = request.app[_BOARD]
    state = board.get(service)
    if state is None:
        return web.json_response({"error": f"unknown service {service!r}"}, status=404)
    if state.behaviour is Behaviour.HANG:
        with board.holding():
            answered = await _wait(request, service, None)
        if not answered:
            return web.json_response({"error": "service is shutting down"}, status=503)
        state = board.get(service)
        if state is None:  # removed while it hung
            return web.json_response({"error": f"unknown service {service!r}"}, status=404)
    if state.behaviour is Behaviour.SLOW:
        delay = board.slow_seconds if state.delay is None else state.delay
        if not await _wait(request, service, delay):
            return web.json_response({"error": "service is shutting down"}, status=503)
    if endpoint == "metrics":
        response: web.StreamResponse = web.Response(
            body=_render_metrics(request.app[_METRICS], service, state).encode(),
            headers={"Content-Type": PROMETHEUS_TYPE},
        )
    else:
        response = _probe_response(service, endpoint, state)
    request.app[_METRICS].observe(service, endpoint, response.status, time.perf_counter() - started)
    return response


def _probe_response(service: str, endpoint: str, state: ServiceHealth) -> web.Response:
    reason = state.reason or DEFAULT_REASONS.get(state.behaviour)
    if state.behaviour is Behaviour.FAILING:
        status = "failing" if endpoint == "health" else "not_ready"
        return web.json_response(
            {"status": status, "service": service, "reason": reason}, status=503
        )
    if endpoint == "ready" and state.behaviour is Behaviour.NOT_READY:
        return web.json_response(
            {"status": "not_ready", "service": service, "reason": reason}, status=503
        )
    status = "ok" if endpoint == "health" else "ready"
    return web.json_response({"status": status, "service": service})


def _render_metrics(metrics: _Metrics, service: str, state: ServiceHealth) -> str:
    seed = int.from_bytes(hashlib.sha256(service.encode()).digest()[:4])
    healthy = state.behaviour is not Behaviour.FAILING
    ready = state.behaviour not in (Behaviour.FAILING, Behaviour.NOT_READY)
    lines = [
        "# HELP http_requests_total Requests served, by endpoint and status code.",
        "# TYPE http_requests_total counter",
    ]
    for (name, endpoint, code), count in sorted(metrics.requests.items()):
        if name == service:
            lines.append(f'http_requests_total{{endpoint="{endpoint}",code="{code}"}} {count}')
    samples = metrics.durations.get(service, [])
    lines += [
        "# HELP http_request_duration_seconds Time to answer a request.",
        "# TYPE http_request_duration_seconds histogram",
    ]
    for bound in _DURATION_BUCKETS:
        below = sum(1 for s in samples if s <= bound)
        lines.append(f'http_request_duration_seconds_bucket{{le="{bound}"}} {below}')
    lines += [
        f'http_request_duration_seconds_bucket{{le="+Inf"}} {len(samples)}',
        f"http_request_duration_seconds_sum {sum(samples):.6f}",
        f"http_request_duration_seconds_count {len(samples)}",
        "# HELP service_healthy Whether the service's own checks pass (1) or not (0).",
        "# TYPE service_healthy gauge",
        f"service_healthy {int(healthy)}",
        "# HELP service_ready Whether the service accepts traffic (1) or not (0).",
        "# TYPE service_ready gauge",
        f"service_ready {int(ready)}",
        "# HELP process_resident_memory_bytes Resident memory size in bytes.",
        "# TYPE process_resident_memory_bytes gauge",
        f"process_resident_memory_bytes {48 * 2**20 + seed % (64 * 2**20)}",
        "# HELP process_start_time_seconds Start time of the process since unix epoch.",
        "# TYPE process_start_time_seconds gauge",
        f"process_start_time_seconds {metrics.started:.3f}",
    ]
    return "\n".join(lines) + "\n"


def _own_base_url(request: web.Request) -> str:
    """This server's own address, from the socket the request came in on."""
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if not sockname:
        return str(request.url.origin())
    host, port = sockname[0], sockname[1]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


async def _probe(session: aiohttp.ClientSession, url: str, timeout: float) -> dict[str, Any]:
    started = time.perf_counter()
    result: dict[str, Any] = {"status": "healthy", "code": None}
    try:
        async with asyncio.timeout(timeout), session.get(url) as response:
            result["code"] = response.status
            body = await response.read()
        if response.status != 200:
            result["status"] = "unhealthy"
            reason = _reason(body)
            if reason:
                result["reason"] = reason
    except TimeoutError:
        result["status"] = "timeout"
    except aiohttp.ClientError as exc:
        result["status"], result["reason"] = "unreachable", str(exc) or type(exc).__name__
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def _reason(body: bytes) -> str | None:
    try:
        value = json.loads(body)
    except ValueError:
        return body.decode(errors="replace")[:200] or None
    return value.get("reason") if isinstance(value, dict) else None


async def _aggregate(request: web.Request) -> web.Response:
    timeout = request.app[_TIMEOUT]
    if "timeout" in request.query:
        try:
            timeout = float(request.query["timeout"])
        except ValueError:
            timeout = -1.0
        if not 0 < timeout <= 30:
            return web.json_response(
                {"error": "timeout must be a number of seconds in (0, 30]"}, status=400
            )
    base = _own_base_url(request)
    names = request.app[_BOARD].services
    session = request.app[_SESSION]
    results = await asyncio.gather(
        *(_probe(session, service_health_url(base, name), timeout) for name in names)
    )
    services = dict(zip(names, results, strict=True))
    healthy = all(r["status"] == "healthy" for r in results)
    return web.json_response(
        {
            "status": "healthy" if healthy else "degraded",
            "checked_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "timeout_seconds": timeout,
            "services": services,
        }
    )
