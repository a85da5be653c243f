"""The sandbox backup-storage service over real HTTP: lifecycle, errors, persistence."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from sandbox.backup import BackupService

FAST = {"backup_seconds": 1.0, "restore_seconds": 1.0, "speed": 20.0}  # 50 ms each
_json_type = {"Content-Type": "application/json"}


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[httpx.AsyncClient]:
    """Serve `app` on a free loopback port and yield a client for it."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            yield client
    finally:
        await runner.cleanup()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(BackupService(tmp_path, **FAST).build_app()) as client:
        yield client


async def wait_done(client: httpx.AsyncClient, path: str) -> dict[str, Any]:
    """Poll a backup or restore until it leaves `running` (bounded, not a timing assertion)."""
    for _ in range(200):
        record = (await client.get(path)).json()
        if record["status"] != "running":
            return record
        await asyncio.sleep(0.02)
    raise AssertionError(f"{path} still running")


async def test_health(api: httpx.AsyncClient) -> None:
    response = await api.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_create_runs_then_completes_and_is_listed(api: httpx.AsyncClient) -> None:
    created = await api.post("/api/backup/create")  # the runbook's curl sends no body
    assert created.status_code == 202
    backup = created.json()
    assert re.fullmatch(r"backup-\d{8}-\d{6}", backup["id"])
    assert backup["status"] == "running"
    assert backup["completed_at"] is None and backup["size_bytes"] is None
    assert created.headers["Location"] == f"/api/backups/{backup['id']}"

    listed = (await api.get("/api/backups")).json()["backups"]
    assert [b["id"] for b in listed] == [backup["id"]]

    done = await wait_done(api, f"/api/backups/{backup['id']}")
    assert done["status"] == "completed"
    assert done["size_bytes"] > 0
    assert datetime.fromisoformat(done["completed_at"]) >= datetime.fromisoformat(
        done["created_at"]
    )
    assert set(done) >= {"id", "name", "status", "created_at", "completed_at", "size_bytes"}


async def test_ids_are_unique_within_a_second_and_listed_newest_first(tmp_path: Path) -> None:
    now = [datetime(2024, 1, 15, 12, 0, 0, 250_000, tzinfo=UTC)]
    service = BackupService(tmp_path, **FAST, now=lambda: now[0])
    async with serving(service.build_app()) as api:
        ids = [(await api.post("/api/backup/create")).json()["id"] for _ in range(3)]
        now[0] += timedelta(seconds=1)
        named = await api.post("/api/backup/create", json={"name": "before-upgrade"})
        listed = (await api.get("/api/backups")).json()["backups"]
    assert ids == ["backup-20240115-120000", "backup-20240115-120000-2", "backup-20240115-120000-3"]
    assert named.json()["id"] == "backup-20240115-120001"
    assert named.json()["name"] == "before-upgrade"
    assert [b["id"] for b in listed] == ["backup-20240115-120001", *reversed(ids)]
    assert listed[0]["created_at"] == "2024-01-15T12:00:01Z"


async def test_create_rejects_a_malformed_body(api: httpx.AsyncClient) -> None:
    bad_json = await api.post("/api/backup/create", content=b"{name:", headers=_json_type)
    bad_name = await api.post("/api/backup/create", json={"name": 5})
    assert bad_json.status_code == 400 and "JSON" in bad_json.json()["error"]
    assert bad_name.status_code == 400 and "name" in bad_name.json()["error"]
    assert (await api.get("/api/backups")).json() == {"backups": []}


async def test_restore_lifecycle(api: httpx.AsyncClient) -> None:
    backup = (await api.post("/api/backup/create")).json()
    await wait_done(api, f"/api/backups/{backup['id']}")

    started = await api.post("/api/backup/restore", json={"backup_id": backup["id"]})
    assert started.status_code == 202
    restore = started.json()
    assert restore["status"] == "running" and restore["backup_id"] == backup["id"]
    assert re.fullmatch(r"restore-\d{8}-\d{6}", restore["id"])
    assert started.headers["Location"] == f"/api/restores/{restore['id']}"

    done = await wait_done(api, f"/api/restores/{restore['id']}")
    assert done["status"] == "completed" and done["completed_at"]
    listed = (await api.get("/api/restores")).json()["restores"]
    assert [r["id"] for r in listed] == [restore["id"]]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"not json", "JSON"),
        (b"[1, 2]", "JSON object"),
        (b"", "JSON object"),
        (b"{}", "backup_id"),
        (b'{"backup_id": 42}', "backup_id"),
    ],
)
async def test_restore_rejects_malformed_bodies(
    api: httpx.AsyncClient, body: bytes, needle: str
) -> None:
    response = await api.post("/api/backup/restore", content=body, headers=_json_type)
    assert response.status_code == 400
    assert needle in response.json()["error"]


async def test_restore_unknown_backup_is_404(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/backup/restore", json={"backup_id": "backup-19990101-000000"})
    assert response.status_code == 404
    assert response.json() == {"error": "backup 'backup-19990101-000000' not found"}
    assert (await api.get("/api/backups/nope")).status_code == 404
    assert (await api.get("/api/restores/nope")).status_code == 404


async def test_restore_conflicts_are_409(tmp_path: Path) -> None:
    service = BackupService(tmp_path, backup_seconds=1.0, restore_seconds=60.0, speed=20.0)
    async with serving(service.build_app()) as api:
        ready = (await api.post("/api/backup/create")).json()["id"]
        await wait_done(api, f"/api/backups/{ready}")
        service.backup_seconds = 600.0
        running = (await api.post("/api/backup/create")).json()["id"]

        not_done = await api.post("/api/backup/restore", json={"backup_id": running})
        first = await api.post("/api/backup/restore", json={"backup_id": ready})
        second = await api.post("/api/backup/restore", json={"backup_id": ready})
    assert not_done.status_code == 409 and "running" in not_done.json()["error"]
    assert first.status_code == 202
    assert second.status_code == 409
    assert "already running" in second.json()["error"]


async def test_failed_backup_cannot_be_restored(tmp_path: Path) -> None:
    service = BackupService(tmp_path, **FAST)
    service.fail_next_backup("pg_dump: connection refused")
    async with serving(service.build_app()) as api:
        backup = (await api.post("/api/backup/create")).json()
        failed = await wait_done(api, f"/api/backups/{backup['id']}")
        restore = await api.post("/api/backup/restore", json={"backup_id": backup["id"]})
    assert failed["status"] == "failed" and failed["error"] == "pg_dump: connection refused"
    assert failed["size_bytes"] is None
    assert restore.status_code == 409


async def test_unknown_routes_and_methods_answer_json(api: httpx.AsyncClient) -> None:
    missing = await api.get("/api/nothing-here")
    wrong_method = await api.get("/api/backup/create")
    assert missing.status_code == 404 and "error" in missing.json()
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()
    assert "POST" in wrong_method.headers["Allow"]


async def test_state_survives_a_restart_and_interrupted_work_is_failed(tmp_path: Path) -> None:
    service = BackupService(tmp_path, **FAST)
    async with serving(service.build_app()) as api:
        done = (await api.post("/api/backup/create", json={"name": "nightly"})).json()["id"]
        await wait_done(api, f"/api/backups/{done}")
        restored = (await api.post("/api/backup/restore", json={"backup_id": done})).json()["id"]
        await wait_done(api, f"/api/restores/{restored}")
        service.backup_seconds = 600.0
        interrupted = (await api.post("/api/backup/create")).json()["id"]
        before = {b["id"]: b for b in (await api.get("/api/backups")).json()["backups"]}

    async with serving(BackupService(tmp_path, **FAST).build_app()) as api:
        after = {b["id"]: b for b in (await api.get("/api/backups")).json()["backups"]}
        restore = (await api.get(f"/api/restores/{restored}")).json()
        again = await api.post("/api/backup/restore", json={"backup_id": done})
        new_id = (await api.post("/api/backup/create")).json()["id"]

    assert after[done] == before[done]
    assert after[done]["name"] == "nightly" and after[done]["status"] == "completed"
    assert after[interrupted]["status"] == "failed"
    assert "interrupted" in after[interrupted]["error"]
    assert restore["status"] == "completed"
    assert again.status_code == 202
    assert new_id not in (done, interrupted)


async def test_backup_running_at_a_crash_is_failed_on_next_start(tmp_path: Path) -> None:
    crashed = BackupService(tmp_path, backup_seconds=600.0)
    running = crashed.create_backup("pre-crash")
    assert '"status": "running"' in crashed.state_path.read_text()  # what a crash leaves behind
    try:
        async with serving(BackupService(tmp_path, **FAST).build_app()) as api:
            record = (await api.get(f"/api/backups/{running.id}")).json()
    finally:
        crashed.close()
    assert record["status"] == "failed" and record["name"] == "pre-crash"
    assert record["completed_at"] is not None and "interrupted" in record["error"]
