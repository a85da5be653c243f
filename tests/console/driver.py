"""Driving the console adapter in-process, and reading the sandbox it works on.

`Console` is the unmodified `ConsoleSession` over a `CommandLayer`, printing into a
`Transcript`: a text stream that also remembers each printed message (the session prints each
reply and each progress update with one flushed `print`), so a test can tell the reply to a
line from progress lines printed meanwhile. Every wait here is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bot.console.session import ConsoleSession
from commands.core.config import Config
from commands.core.models import User
from commands.flow.layer import CommandLayer
from commands.store.state import State
from sandbox.cluster import Sandbox
from sandbox.resources import DEPLOYMENTS, PODS, REPLICASETS
from tests.kubectl import kubectl

NS = "holm"
REGISTRY_HOST = "10.110.67.87:5000"
DEFAULT_USER = "console:operator"
LIMIT = 60.0  # seconds any one tracked operation may take in these tests
PROBE_TIMEOUT = 1.0  # the sandbox fixture's aggregator probes with this timeout too
_OPERATION = re.compile(r"^operation: (\S+)$", re.MULTILINE)


class Transcript(io.StringIO):
    """Everything printed, and each flushed message on its own (`print(..., flush=True)`)."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        return super().write(text)

    def flush(self) -> None:
        if self._pending:
            self.messages.append(self._pending.removesuffix("\n"))
            self._pending = ""
        super().flush()


class Console:
    """A console session as a user types into it; what it printed, message by message."""

    def __init__(
        self, layer: CommandLayer, user: str = DEFAULT_USER, attachments: Path | None = None
    ) -> None:
        self.layer = layer
        self.out = Transcript()
        self.session = ConsoleSession(layer, User.parse(user), self.out, attachments)

    @property
    def text(self) -> str:
        return self.out.getvalue()

    async def run(self, line: str) -> str:
        """Type one line; returns the reply it printed (progress follows in the background)."""
        printed = len(self.out.messages)
        await self.session.run_line(line)
        assert len(self.out.messages) > printed, f"no reply to {line!r}"
        return self.out.messages[-1]

    async def wait(self) -> None:
        """The console's `wait` line, bounded: every tracked operation reaches its end."""
        async with asyncio.timeout(LIMIT):
            await self.session.run_line("wait")

    async def stop_bot(self) -> None:
        """The bot stops (as on SIGTERM) with work in flight; what it printed stays readable."""
        await self.layer.close()
        await self.session.wait()
        await self.session.close()

    def progress(self, operation_id: str) -> list[str]:
        """The progress messages printed for one operation, the final result last."""
        return [m for m in self.out.messages if m.startswith(f"[{operation_id}] ")]

    def final(self, operation_id: str) -> str:
        """The final result line of a finished operation."""
        lines = self.progress(operation_id)
        assert lines, f"nothing printed for {operation_id}:\n{self.text}"
        last = lines[-1]
        assert last.startswith((f"[{operation_id}] ✔ ", f"[{operation_id}] ✘ ")), self.text
        return last


def operation_id(reply: str) -> str:
    """The tracked operation a rollout reply names (its `operation:` field)."""
    match = _OPERATION.search(reply)
    assert match is not None, f"no operation in reply:\n{reply}"
    return match.group(1)


@asynccontextmanager
async def open_console(
    config: Config, user: str = DEFAULT_USER, attachments: Path | None = None
) -> AsyncIterator[Console]:
    """A `CommandLayer` opened on `config` behind a console session; both closed after."""
    layer = await CommandLayer.open(config)
    console = Console(layer, user, attachments)
    try:
        yield console
    finally:
        with contextlib.suppress(TimeoutError):  # a failed test may leave operations running
            async with asyncio.timeout(5):
                await console.session.wait()
        await console.session.close()
        await layer.close()


def with_changes(config: Config, **sections: dict[str, Any]) -> Config:
    """`config` with fields of some sections replaced: `rollout={"timeout_seconds": 9}`."""
    update = {
        name: getattr(config, name).model_copy(update=fields) for name, fields in sections.items()
    }
    return config.model_copy(update=update)


# --- the cluster, as the sandbox's store holds it -----------------------------------------


async def audit_log(config: Config) -> list[dict[str, Any]]:
    """Every audit entry the bot has written under `config`, oldest first, as JSON."""
    async with await State.in_dir(config.state_dir, read_only=True) as state:
        return [entry.model_dump(mode="json") for entry in await state.audit_entries()]


def image(service: str, tag: str) -> str:
    return f"{REGISTRY_HOST}/{service}:{tag}"


def deployment(sandbox: Sandbox, name: str) -> dict[str, Any]:
    return sandbox.store.get(DEPLOYMENTS, NS, name)


def current_image(sandbox: Sandbox, name: str) -> str:
    containers = deployment(sandbox, name)["spec"]["template"]["spec"]["containers"]
    return next(c["image"] for c in containers if c["name"] == name)


def desired_state(sandbox: Sandbox, name: str) -> tuple[Any, ...]:
    """What a change would alter: generation, spec and annotations (status moves on its own)."""
    live = deployment(sandbox, name)
    meta = live["metadata"]
    return meta["generation"], live["spec"], meta.get("annotations")


def pods(sandbox: Sandbox, app: str) -> list[dict[str, Any]]:
    return sandbox.store.list(PODS, NS, lambda p: p["metadata"]["labels"].get("app") == app)


def rolled_out(sandbox: Sandbox, name: str) -> bool:
    """kubectl's "successfully rolled out", read from the store."""
    live = deployment(sandbox, name)
    status, replicas = live.get("status") or {}, live["spec"]["replicas"]
    return (
        status.get("observedGeneration") == live["metadata"]["generation"]
        and status.get("updatedReplicas", 0) == replicas
        and status.get("availableReplicas", 0) == replicas
        and status.get("replicas", 0) == replicas
    )


def new_pod_prefix(sandbox: Sandbox, app: str, image: str) -> str:
    """`APP-HASH-`: how the names of the pods of the ReplicaSet running `image` begin."""
    [owned] = [
        rs
        for rs in sandbox.store.list(REPLICASETS, NS)
        if rs["metadata"]["labels"].get("app") == app
        and image in {c["image"] for c in rs["spec"]["template"]["spec"]["containers"]}
    ]
    return f"{owned['metadata']['name']}-"


def crash_looping(prefix: str) -> re.Pattern[str]:
    """A pod state the bot prints for a container that exits with code 1, over and over: just
    exited (Error), or waiting out the restart back-off (CrashLoopBackOff)."""
    restarts = r"\d+ restarts?"
    exited = rf"Error \(exit code 1(, {restarts})?\)"
    backing_off = rf"CrashLoopBackOff \(last terminated: Error, {restarts}\)"
    return re.compile(rf"{re.escape(prefix)}\w+: ({exited}|{backing_off})")


def last_termination_reasons(sandbox: Sandbox, app: str) -> set[str]:
    """The reasons of the last terminations of the app's containers (e.g. OOMKilled)."""
    return {
        terminated["reason"]
        for pod in pods(sandbox, app)
        for status in (pod.get("status") or {}).get("containerStatuses") or []
        if (terminated := (status.get("lastState") or {}).get("terminated"))
    }


async def wait_for_log_lines(sandbox: Sandbox, app: str, container: str, count: int) -> None:
    """Wait (bounded) until the app's pods have logged at least `count` lines in all."""
    async with asyncio.timeout(30):
        while True:
            logs = await kubectl(
                sandbox.kubeconfig,
                "-n",
                NS,
                "logs",
                "-l",
                f"app={app}",
                "-c",
                container,
                "--tail=-1",
            )
            if logs.code == 0 and len(logs.stdout.splitlines()) >= count:
                return
            await asyncio.sleep(0.2)
