"""The sandbox services' health endpoints and the health aggregator, over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from aiohttp import web

from sandbox.health import (
    PROMETHEUS_TYPE,
    HealthBoard,
    aggregator_url,
    build_health_app,
    service_base_url,
    service_health_url,
    service_url_template,
)
from tests.polling import eventually

TIMEOUT = 0.4  # the aggregator's per-service timeout in these tests


@dataclass
class Served:
    board: HealthBoard
    base: str
    client: httpx.AsyncClient
    runner: web.AppRunner


@contextlib.asynccontextmanager
async def serving(board: HealthBoard, **kwargs: float) -> AsyncIterator[Served]:
    """Serve the health app for `board` on a free loopback port."""
    runner = web.AppRunner(build_health_app(board, **kwargs), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:
            yield Served(board, base, client, runner)
    finally:
        await runner.cleanup()


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    board = HealthBoard(["holm-api", "holm-web", "postgres"], slow_seconds=0.1)
    async with serving(board, probe_timeout=TIMEOUT) as served:
        yield served


def test_url_helpers() -> None:
    base = "http://127.0.0.1:8080/"
    assert service_base_url(base, "holm-api") == "http://127.0.0.1:8080/svc/holm-api"
    assert service_health_url(base, "holm-api") == "http://127.0.0.1:8080/svc/holm-api/health"
    template = service_url_template(base)
    assert template.format(service="holm-api") == service_base_url(base, "holm-api")
    assert aggregator_url(base) == "http://127.0.0.1:8080/api/health/all"


def test_board_rejects_unknown_behaviours() -> None:
    board = HealthBoard()
    with pytest.raises(ValueError, match="one of: ok, slow, hang, failing, not_ready"):
        board.set("holm-api", "sleepy")


async def test_ok_service_answers_health_ready_and_metrics(served: Served) -> None:
    health = await served.client.get(service_health_url(served.base, "holm-api"))
    ready = await served.client.get("/svc/holm-api/ready")
    metrics = await served.client.get("/svc/holm-api/metrics")
    assert (health.status_code, health.json()) == (200, {"status": "ok", "service": "holm-api"})
    assert (ready.status_code, ready.json()["status"]) == (200, "ready")
    assert metrics.status_code == 200
    assert metrics.headers["Content-Type"] == PROMETHEUS_TYPE
    text = metrics.text
    assert "# TYPE http_requests_total counter" in text
    assert 'http_requests_total{endpoint="health",code="200"} 1' in text
    assert 'http_requests_total{endpoint="ready",code="200"} 1' in text
    assert "service_healthy 1" in text
    assert "http_request_duration_seconds_count 2" in text


async def test_unknown_service_is_404(served: Served) -> None:
    response = await served.client.get("/svc/nope/health")
    assert response.status_code == 404
    assert "nope" in response.json()["error"]


async def test_failing_and_not_ready(served: Served) -> None:
    served.board.set("holm-api", "failing", reason="postgres: connection refused")
    served.board.set("holm-web", "not_ready")
    api_health = await served.client.get("/svc/holm-api/health")
    api_ready = await served.client.get("/svc/holm-api/ready")
    web_health = await served.client.get("/svc/holm-web/health")
    web_ready = await served.client.get("/svc/holm-web/ready")
    api_metrics = (await served.client.get("/svc/holm-api/metrics")).text
    assert api_health.status_code == 503
    assert api_health.json() == {
        "status": "failing",
        "service": "holm-api",
        "reason": "postgres: connection refused",
    }
    assert api_ready.status_code == 503
    assert web_health.status_code == 200
    assert web_ready.status_code == 503 and web_ready.json()["status"] == "not_ready"
    assert web_ready.json()["reason"]
    assert "service_healthy 0" in api_metrics
    assert 'http_requests_total{endpoint="health",code="503"} 1' in api_metrics


async def test_behaviour_changes_at_run_time(served: Served) -> None:
    assert (await served.client.get("/svc/postgres/health")).status_code == 200
    served.board.set("postgres", "failing")
    assert (await served.client.get("/svc/postgres/health")).status_code == 503
    served.board.set("postgres", "ok")
    assert (await served.client.get("/svc/postgres/health")).status_code == 200
    served.board.remove("postgres")
    assert (await served.client.get("/svc/postgres/health")).status_code == 404


async def test_slow_service_answers_after_its_delay(served: Served) -> None:
    served.board.set("holm-web", "slow", delay=0.2)
    started = time.perf_counter()
    response = await served.client.get("/svc/holm-web/health")
    assert response.status_code == 200
    assert time.perf_counter() - started >= 0.2  # it did wait: a floor, not a timing bound


def _serving_service_requests() -> list[asyncio.Task[object]]:
    """Tasks currently inside a service endpoint handler (walking each task's await chain)."""
    found = []
    for task in asyncio.all_tasks():
        coro: object = task.get_coro()
        while coro is not None:
            code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
            if code is not None and code.co_name == "_service_endpoint":
                found.append(task)
                break
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return found


async def test_hanging_service_never_answers_and_frees_its_handler(served: Served) -> None:
    served.board.set("holm-api", "hang")
    hanging = asyncio.create_task(served.client.get("/svc/holm-api/health", timeout=0.3))
    held = await eventually(_serving_service_requests)  # the server is holding the request
    assert len(held) == 1
    # Other services are not blocked by the hanging one.
    assert (await served.client.get("/svc/holm-web/health")).status_code == 200
    with pytest.raises(httpx.ReadTimeout):
        await hanging
    # Once the client has given up, the handler ends instead of hanging on forever.
    await eventually(lambda: not _serving_service_requests(), timeout=2)


async def test_hang_ends_when_the_service_recovers(served: Served) -> None:
    served.board.set("holm-api", "hang")
    request = asyncio.create_task(served.client.get("/svc/holm-api/health"))
    await eventually(_serving_service_requests)  # the server is holding it ...
    assert not request.done()  # ... unanswered
    served.board.set("holm-api", "ok")
    response = await request
    assert response.status_code == 200


async def test_shutdown_does_not_wait_for_hanging_requests() -> None:
    board = HealthBoard({"holm-api": "hang"})
    async with serving(board) as served:
        request = asyncio.create_task(served.client.get("/svc/holm-api/health"))
        await eventually(_serving_service_requests)
        # aiohttp would wait up to its 60 s shutdown timeout for a handler that never ends.
        async with asyncio.timeout(5):
            await served.runner.cleanup()
        with contextlib.suppress(httpx.HTTPError):
            await request
    leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert leftover == []


async def test_aggregator_all_healthy(served: Served) -> None:
    response = await served.client.get("/api/health/all")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "healthy"
    assert set(body["services"]) == {"holm-api", "holm-web", "postgres"}
    for result in body["services"].values():
        assert result["status"] == "healthy" and result["code"] == 200
        assert result["latency_ms"] >= 0


async def test_aggregator_reports_degraded_services(served: Served) -> None:
    served.board.set("holm-api", "failing", reason="disk full")
    served.board.set("holm-web", "not_ready")  # ready or not, /health is what is aggregated
    body = (await served.client.get("/api/health/all")).json()
    assert body["status"] == "degraded"
    assert body["services"]["holm-api"]["status"] == "unhealthy"
    assert body["services"]["holm-api"]["code"] == 503
    assert body["services"]["holm-api"]["reason"] == "disk full"
    assert body["services"]["holm-web"]["status"] == "healthy"


async def test_aggregator_costs_one_timeout_however_many_services_hang() -> None:
    board = HealthBoard([f"svc-{n:02d}" for n in range(30)])
    for n in range(6):
        board.set(f"svc-{n:02d}", "hang")
    board.set("svc-10", "slow", delay=0.05)
    async with serving(board, probe_timeout=TIMEOUT) as served:
        response = await served.client.get("/api/health/all")
    body = response.json()
    assert body["status"] == "degraded"
    hung = {name for name, r in body["services"].items() if r["status"] == "timeout"}
    assert hung == {f"svc-{n:02d}" for n in range(6)}
    assert all(body["services"][name]["code"] is None for name in hung)
    assert body["services"]["svc-10"]["status"] == "healthy"
    assert board.most_hanging_at_once == 6  # all six were asked at once: one timeout, not six


async def test_aggregator_timeout_parameter(served: Served) -> None:
    served.board.set("postgres", "hang")
    body = (await served.client.get("/api/health/all", params={"timeout": "0.1"})).json()
    bad = await served.client.get("/api/health/all", params={"timeout": "soon"})
    assert body["timeout_seconds"] == 0.1
    assert body["services"]["postgres"]["status"] == "timeout"
    assert bad.status_code == 400 and "timeout" in bad.json()["error"]


async def test_empty_board_is_healthy() -> None:
    async with serving(HealthBoard()) as served:
        body = (await served.client.get("/api/health/all")).json()
        own = await served.client.get("/health")
    assert body["status"] == "healthy" and body["services"] == {}
    assert own.status_code == 200
