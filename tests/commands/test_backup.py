"""`/backup` against the sandbox's backup service on loopback, and against failing servers."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from commands.clients.backup import BackupClient
from commands.core.config import BackupConfig
from commands.core.models import FinalResult, Outcome, Progress, ProgressUpdate, Tone
from commands.core.parser import parse_command
from commands.handlers.backup import run_backup_command
from sandbox.backup import BackupService
from sandbox.serving import serve_app
from tests.commands.servers import Serve, fault_app

Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


@pytest.fixture
def service(tmp_path: Path) -> BackupService:
    # A backup takes 3 s and a restore 5 s of service time; speed 50 makes them 60 and 100 ms.
    return BackupService(tmp_path / "backups", speed=50)


@pytest.fixture
async def client(service: BackupService, serve: Serve) -> AsyncIterator[BackupClient]:
    url = await serve(service.build_app())
    config = BackupConfig(url=url, timeout_seconds=1, poll_interval_seconds=0.02)
    async with BackupClient(config) as backup_client:
        yield backup_client


async def behind(
    middleware: Middleware, tmp_path: Path, serve: Serve, backup_seconds: float = 1.0
) -> tuple[BackupService, str]:
    """The sandbox's backup service with `middleware` in front, served: it and its URL."""
    service = BackupService(tmp_path, backup_seconds=backup_seconds, speed=5)
    app = service.build_app()
    app.middlewares.insert(0, web.middleware(middleware))
    return service, await serve(app)


async def run(client: BackupClient, text: str) -> Outcome:
    return await run_backup_command(parse_command(text), client)  # type: ignore[arg-type]


async def drain(outcome: Outcome) -> list[Progress]:
    assert outcome.progress is not None
    return [event async for event in outcome.progress]


async def test_create_list_restore_lifecycle(client: BackupClient, service: BackupService) -> None:
    outcome = await run(client, "/backup create nightly")
    assert re.fullmatch(r"Started backup backup-\d{8}-\d{6} \(nightly\)", outcome.reply.title)
    events = await drain(outcome)
    *updates, final = events
    assert all(isinstance(update, ProgressUpdate) for update in updates)
    assert isinstance(final, FinalResult)
    assert final.ok, final.message
    assert re.fullmatch(r"backup backup-\S+ \(nightly\) completed: \d+\.\d MiB", final.message)
    (backup,) = service.list_backups()
    assert backup.status == "completed"
    assert backup.name == "nightly"
    assert final.operation_id == backup.id

    listing = (await run(client, "backup list")).reply
    assert listing.title == "1 backup"
    assert listing.table is not None
    assert listing.table.columns == ["ID", "NAME", "STATUS", "SIZE", "AGE"]
    assert listing.table.rows[0][:3] == [backup.id, "nightly", "completed"]
    assert backup.id in listing.text

    outcome = await run(client, f"!backup restore {backup.id}")
    assert outcome.reply.title.startswith(f"Restoring {backup.id} (restore-")
    final = (await drain(outcome))[-1]
    assert isinstance(final, FinalResult)
    assert final.ok
    assert final.message == f"restore of {backup.id} completed"
    (restore,) = service.list_restores()
    assert (restore.backup_id, restore.status) == (backup.id, "completed")


async def test_a_service_with_only_the_runbooks_endpoints(tmp_path: Path, serve: Serve) -> None:
    """Create, list and restore only (runbook 4.1/4.2): a backup is followed through the
    list, and a restore, which such a service cannot report on, is said to have started."""
    contract = {"/api/backup/create", "/api/backups", "/api/backup/restore", "/health"}

    async def runbook_only(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in contract:
            return web.json_response({"error": "not found"}, status=404)
        return await handler(request)

    service, url = await behind(runbook_only, tmp_path, serve)
    async with BackupClient(BackupConfig(url=url, poll_interval_seconds=0.01)) as client:
        created = (await drain(await run(client, "backup create nightly")))[-1]
        (backup,) = service.list_backups()
        restored = (await drain(await run(client, f"backup restore {backup.id}")))[-1]
    assert isinstance(created, FinalResult) and created.ok, created
    assert created.message.startswith(f"backup {backup.id} (nightly) completed: ")
    assert isinstance(restored, FinalResult) and restored.ok, restored
    assert restored.message.endswith(
        "started; the backup service does not report how restores go, so check the restored data"
    )
    assert [r.backup_id for r in service.list_restores()] == [backup.id]


async def test_a_status_other_than_running_is_waited_out_not_taken_for_failure(
    tmp_path: Path, serve: Serve
) -> None:
    shown: list[str] = []

    async def queued(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if request.path != "/api/backups" or not isinstance(response, web.Response):
            return response
        body = json.loads(bytes(response.body))  # a service that says "queued" at first
        for backup in body["backups"]:
            if backup["status"] == "running" and len(shown) < 2:
                backup["status"] = "queued"
            shown.append(backup["status"])
        return web.json_response(body)

    _, url = await behind(queued, tmp_path, serve)
    async with BackupClient(BackupConfig(url=url, poll_interval_seconds=0.01)) as client:
        final = (await drain(await run(client, "backup create")))[-1]
    assert isinstance(final, FinalResult) and final.ok, final
    assert shown[:2] == ["queued", "queued"] and shown[-1] == "completed"


async def test_the_list_is_newest_first_and_skips_what_it_cannot_read(
    tmp_path: Path, serve: Serve
) -> None:

    async def oldest_first(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if request.path == "/api/backups" and isinstance(response, web.Response):
            body = json.loads(bytes(response.body))
            broken = {"id": "backup-?", "status": "completed"}  # no created_at
            return web.json_response({"backups": [*body["backups"][::-1], broken]})
        return response

    _, url = await behind(oldest_first, tmp_path, serve, backup_seconds=0.1)
    async with BackupClient(BackupConfig(url=url, poll_interval_seconds=0.01)) as client:
        for name in ("first", "second"):
            await drain(await run(client, f"backup create {name}"))
            await asyncio.sleep(1.1)  # backup ids are stamped to the second
        listing = (await run(client, "backup list")).reply
    assert listing.table is not None
    assert [row[1] for row in listing.table.rows] == ["second", "first"]
    assert listing.lines == ["1 record(s) the backup service sent could not be read"]


async def test_empty_list(client: BackupClient) -> None:
    reply = (await run(client, "backup list")).reply
    assert reply.title == "No backups yet"
    assert reply.table is None


async def test_failed_backup_is_a_failed_final_result(
    client: BackupClient, service: BackupService
) -> None:
    service.fail_next_backup("pg_dump exited with status 1")
    final = (await drain(await run(client, "backup create")))[-1]
    assert isinstance(final, FinalResult)
    assert not final.ok
    assert final.message.endswith("failed: pg_dump exited with status 1")
    assert final.reason == "failed"


async def test_unknown_backup_id_says_so_and_starts_nothing(
    client: BackupClient, service: BackupService
) -> None:
    await drain(await run(client, "backup create"))
    reply = (await run(client, "backup restore backup-19990101-000000")).reply
    assert reply.tone == Tone.ERROR
    assert reply.title == "No backup called backup-19990101-000000"
    assert reply.lines == [f"newest completed backups: {service.list_backups()[0].id}"]
    assert service.list_restores() == []


async def test_restore_while_another_runs_is_refused(
    client: BackupClient, service: BackupService
) -> None:
    await drain(await run(client, "backup create"))
    backup_id = service.list_backups()[0].id
    first = await run(client, f"backup restore {backup_id}")
    second = (await run(client, f"backup restore {backup_id}")).reply
    assert second.tone == Tone.ERROR
    assert second.title == f"Restore of {backup_id} not started"
    assert "is already running" in second.lines[0]
    assert first.progress is not None
    await drain(first)
    assert len(service.list_restores()) == 1


async def test_restoring_a_backup_that_is_still_running_is_refused(
    client: BackupClient, service: BackupService
) -> None:
    created = await run(client, "backup create")
    backup_id = service.list_backups()[0].id
    reply = (await run(client, f"backup restore {backup_id}")).reply
    assert reply.tone == Tone.ERROR
    assert "only completed backups restore" in reply.lines[0]
    await drain(created)


async def test_operation_timeout_stops_following(tmp_path: Path, serve: Serve) -> None:
    service = BackupService(tmp_path, backup_seconds=3600)
    url = await serve(service.build_app())
    config = BackupConfig(url=url, poll_interval_seconds=0.02, operation_timeout_seconds=0.1)
    async with BackupClient(config) as client:
        events = await drain(await run(client, "backup create"))
    final = events[-1]
    assert isinstance(final, FinalResult)
    assert (final.ok, final.reason) == (False, "timeout")
    assert "holmbot stopped following it" in final.message
    assert any(isinstance(event, ProgressUpdate) for event in events)


async def test_service_down(refused_url: str) -> None:
    async with BackupClient(BackupConfig(url=refused_url)) as client:
        for text in ("backup list", "backup create", "backup restore backup-1"):
            outcome = await run(client, text)
            assert outcome.reply.tone == Tone.ERROR
            assert outcome.progress is None
            assert f"backup service at {refused_url} is unreachable" in outcome.reply.text


async def test_service_failing(serve: Serve) -> None:
    url = await serve(fault_app("500"))
    async with BackupClient(BackupConfig(url=url)) as client:
        reply = (await run(client, "backup list")).reply
    assert reply.title == "Cannot list backups"
    assert reply.lines == [f"backup service at {url} failed (500): internal error"]


async def test_service_hanging_costs_one_timeout(serve: Serve) -> None:
    url = await serve(fault_app("hang"))
    async with BackupClient(BackupConfig(url=url, timeout_seconds=0.2)) as client:
        listing = (await run(client, "backup list")).reply
        create = (await run(client, "backup create")).reply
    assert listing.lines == [f"backup service at {url} did not answer within 0.2s"]
    # the request was sent and no answer came: it may have started
    assert (create.title, create.tone) == ("Backup may have started", Tone.WARNING)
    assert create.lines == [
        f"backup service at {url} did not answer within 0.2s",
        "/backup list shows whether it did; a running restore answers 409",
    ]


async def test_a_create_answered_too_late_is_not_called_not_started(
    tmp_path: Path, serve: Serve
) -> None:

    async def slow(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)  # the backup starts ...
        if request.method == "POST":
            await asyncio.sleep(0.5)  # ... and the answer comes after the client gave up
        return response

    service, url = await behind(slow, tmp_path, serve)
    async with BackupClient(BackupConfig(url=url, timeout_seconds=0.2)) as client:
        outcome = await run(client, "backup create nightly")
    assert outcome.reply.title == "Backup may have started"
    assert outcome.failed
    assert [b.name for b in service.list_backups()] == ["nightly"]


@pytest.mark.parametrize(("status", "error"), [(503, "maintenance"), (429, "slow down")])
async def test_service_failing_while_following(
    tmp_path: Path, serve: Serve, status: int, error: str
) -> None:
    """A 5xx or 429 while polling is a problem shown, and polling goes on to the real end."""
    down = asyncio.Event()

    async def outage(request: web.Request, handler: Handler) -> web.StreamResponse:
        if down.is_set() and request.method == "GET":
            return web.json_response({"error": error}, status=status)
        return await handler(request)

    service, url = await behind(outage, tmp_path, serve)
    config = BackupConfig(url=url, poll_interval_seconds=0.01)
    async with BackupClient(config) as client:
        outcome = await run(client, "backup create")
        assert outcome.progress is not None
        first = await anext(outcome.progress)
        assert isinstance(first, ProgressUpdate)
        assert first.problems == []
        down.set()
        during = await anext(outcome.progress)
        assert isinstance(during, ProgressUpdate)
        assert during.problems == [
            f"backup service at {url} failed ({status}): {error}; still trying"
        ]
        down.clear()
        final = [event async for event in outcome.progress][-1]
    assert isinstance(final, FinalResult)
    assert final.ok, final.message
    assert service.list_backups()[0].status == "completed"


async def test_backup_service_restarting_mid_backup_fails_it(tmp_path: Path) -> None:
    """Work that died with the service ends failed, and the user is told why."""
    runner, url = await serve_app(BackupService(tmp_path, backup_seconds=3600).build_app())
    port = int(url.rsplit(":", 1)[1])
    config = BackupConfig(url=url, poll_interval_seconds=0.01, timeout_seconds=0.5)
    async with BackupClient(config) as client:
        outcome = await run(client, "backup create")
        assert outcome.progress is not None
        assert isinstance(await anext(outcome.progress), ProgressUpdate)
        await runner.cleanup()  # the service stops; its backup dies with it
        down = await anext(outcome.progress)
        assert isinstance(down, ProgressUpdate)
        assert f"backup service at {url} is unreachable" in down.problems[0]
        runner, _ = await serve_app(BackupService(tmp_path).build_app(), port)
        try:
            final = [event async for event in outcome.progress][-1]
        finally:
            await runner.cleanup()
    assert isinstance(final, FinalResult)
    assert not final.ok
    assert f"backup {final.operation_id} failed: interrupted" in final.message
