"""Container logs as the kubelet keeps them: what `kubectl logs` and `GET .../pods/P/log` read.

Every container instance (one container ID) gets a `ContainerLog` when it starts; the kubelet
keeps the current and the previous instance of each container, each bounded to the last
`max_lines` lines. Which instance a read means follows the pod's status exactly as the real
kubelet decides it, so a container waiting in CrashLoopBackOff shows its last run's lines, and
`previous` needs a `lastState.terminated` with a container ID. The voices at the bottom write
what a HolmOS service plausibly says: start-up, requests, probes, a crash, a growing heap.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox.resources import PODS
from sandbox.store import ApiError, ObjectStore

Obj = dict[str, Any]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class LogsUnavailableError(ApiError):
    """A log request the API server answers with 400, e.g. no previous terminated container."""

    def __init__(self, message: str) -> None:
        super().__init__(400, "BadRequest", message)


def rfc3339_nano(timestamp_ns: int) -> str:
    """`2026-11-26T12:00:00.123456789Z`: the kubelet's fixed nine-digit log timestamp."""
    seconds, nanos = divmod(timestamp_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


@dataclass
class ContainerLog:
    """The lines one container instance has written, newest last."""

    container_id: str
    max_lines: int
    lines: deque[tuple[int, str]] = field(init=False)
    total: int = 0  # lines ever written; the first kept line has index total - len(lines)
    closed: bool = False
    _wakeup: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def __post_init__(self) -> None:
        self.lines = deque(maxlen=self.max_lines)

    def write(self, text: str) -> None:
        """Append `text` (one or more lines), stamped now."""
        if self.closed:
            return
        now = time.time_ns()
        for line in text.split("\n"):
            self.lines.append((now, line))
            self.total += 1
        self._notify()

    def close(self) -> None:
        """The process exited: no more lines, and followers stop."""
        self.closed = True
        self._notify()

    def _notify(self) -> None:
        self._wakeup.set()
        self._wakeup = asyncio.Event()


@dataclass
class _Slots:
    current: ContainerLog | None = None
    previous: ContainerLog | None = None


class PodLogs:
    """The logs of every container instance on every node, keyed by pod uid and container."""

    def __init__(self, store: ObjectStore, max_lines: int = 2000) -> None:
        self._store = store
        self._max_lines = max_lines
        self._slots: dict[tuple[str, str], _Slots] = {}

    def open(self, pod_uid: str, container: str, container_id: str) -> ContainerLog:
        """Start the log of a new instance; the current one becomes the previous one."""
        slots = self._slots.setdefault((pod_uid, container), _Slots())
        if slots.current is not None:
            slots.current.close()
        slots.previous, slots.current = slots.current, ContainerLog(container_id, self._max_lines)
        return slots.current

    def current(self, namespace: str, pod: str, container: str) -> ContainerLog | None:
        """The log the container's newest instance writes to; None before it first started.

        Raises ApiError 404 for a missing pod.
        """
        uid = self._store.get(PODS, namespace, pod)["metadata"]["uid"]
        slots = self._slots.get((uid, container))
        return slots.current if slots is not None else None

    def forget(self, pod_uid: str) -> None:
        """Drop a deleted pod's logs, closing them so followers end."""
        for key in [key for key in self._slots if key[0] == pod_uid]:
            for log in (self._slots[key].current, self._slots[key].previous):
                if log is not None:
                    log.close()
            del self._slots[key]

    def read(
        self,
        namespace: str,
        name: str,
        container: str | None = None,
        *,
        previous: bool = False,
        tail_lines: int | None = None,
        since_seconds: int | None = None,
        since_time: datetime | None = None,
        timestamps: bool = False,
        limit_bytes: int | None = None,
    ) -> str:
        """The log text, like the body of `GET .../pods/NAME/log`.

        Raises ApiError 404 for a missing pod and LogsUnavailableError (400) with the real
        server's message when the container cannot be read.
        """
        log = self._resolve(namespace, name, container, previous)
        if log is None:
            return ""
        kept = _select(list(log.lines), tail_lines, _cutoff(since_seconds, since_time))
        text = "".join(_render(stamp, line, timestamps) for stamp, line in kept)
        if limit_bytes is not None:
            text = text.encode()[: max(limit_bytes, 0)].decode(errors="ignore")
        return text

    def follow(
        self,
        namespace: str,
        name: str,
        container: str | None = None,
        *,
        previous: bool = False,
        tail_lines: int | None = None,
        since_seconds: int | None = None,
        since_time: datetime | None = None,
        timestamps: bool = False,
    ) -> AsyncIterator[str]:
        """`read`'s lines, then each new line as it is written, until the instance exits.

        Lines end in a newline. Everything is resolved at call time: errors raise here, before
        any line is sent, and no line written after the call is missed or repeated.
        """
        log = self._resolve(namespace, name, container, previous)
        if log is None:
            return _follow(None, [], 0, timestamps)
        kept = _select(list(log.lines), tail_lines, _cutoff(since_seconds, since_time))
        return _follow(
            log, [_render(stamp, line, timestamps) for stamp, line in kept], log.total, timestamps
        )

    def _resolve(
        self, namespace: str, name: str, container: str | None, previous: bool
    ) -> ContainerLog | None:
        pod = self._store.get(PODS, namespace, name)
        container = _container_name(pod, container)
        if not pod.get("spec", {}).get("nodeName"):
            return None
        container_id = _log_container_id(pod, container, previous)
        slots = self._slots.get((pod["metadata"]["uid"], container))
        if slots is None:
            return None
        for log in (slots.current, slots.previous):
            if log is not None and log.container_id == container_id:
                return log
        return None


def _container_name(pod: Obj, container: str | None) -> str:
    name = pod["metadata"]["name"]
    names = [c["name"] for c in pod.get("spec", {}).get("containers", [])]
    if container:
        if container not in names:
            raise LogsUnavailableError(f"container {container} is not valid for pod {name}")
        return container
    if len(names) == 1:
        return names[0]
    if not names:
        raise LogsUnavailableError(f"a container name must be specified for pod {name}")
    raise LogsUnavailableError(
        f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
    )


def _log_container_id(pod: Obj, container: str, previous: bool) -> str:
    """Which instance's logs a request means: the kubelet's validateContainerLogStatus."""
    pod_name = pod["metadata"]["name"]
    where = f'container "{container}" in pod "{pod_name}"'
    statuses = pod.get("status", {}).get("containerStatuses") or []
    status = next((s for s in statuses if s.get("name") == container), None)
    if status is None:
        raise LogsUnavailableError(f"{where} is not available")
    state, last = status.get("state") or {}, status.get("lastState") or {}
    if previous:
        terminated = last.get("terminated")
        if not terminated or not terminated.get("containerID"):
            raise LogsUnavailableError(
                f'previous terminated container "{container}" in pod "{pod_name}" not found'
            )
        return str(terminated["containerID"])
    if "running" in state:
        return str(status.get("containerID", ""))
    for terminated in (state.get("terminated"), last.get("terminated")):
        if terminated is not None:
            if not terminated.get("containerID"):
                raise LogsUnavailableError(f"{where} is terminated")
            return str(terminated["containerID"])
    waiting = state.get("waiting")
    if waiting is not None:
        reason = waiting.get("reason", "")
        detail = {
            "ErrImagePull": "image can't be pulled",
            "ImagePullBackOff": "trying and failing to pull image",
        }.get(reason, reason)
        raise LogsUnavailableError(f"{where} is waiting to start: {detail}")
    raise LogsUnavailableError(f"{where} is waiting to start - no logs yet")


def _cutoff(since_seconds: int | None, since_time: datetime | None) -> int | None:
    if since_seconds is not None:
        return time.time_ns() - since_seconds * 1_000_000_000
    if since_time is not None:
        delta = since_time - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    return None


def _select(
    lines: list[tuple[int, str]], tail_lines: int | None, cutoff: int | None
) -> list[tuple[int, str]]:
    if tail_lines is not None:
        lines = lines[-tail_lines:] if tail_lines > 0 else []
    if cutoff is not None:
        lines = [entry for entry in lines if entry[0] >= cutoff]
    return lines


def _render(stamp: int, line: str, timestamps: bool) -> str:
    return f"{rfc3339_nano(stamp)} {line}\n" if timestamps else f"{line}\n"


async def _follow(
    log: ContainerLog | None, backlog: list[str], position: int, timestamps: bool
) -> AsyncIterator[str]:
    for line in backlog:
        yield line
    while log is not None:
        if log.total == position and not log.closed:
            await log._wakeup.wait()
            continue
        first_kept = log.total - len(log.lines)
        fresh = list(log.lines)[max(position - first_kept, 0) :]
        position = log.total
        for stamp, line in fresh:
            yield _render(stamp, line, timestamps)
        if log.closed and log.total == position:
            return


# What the containers say.


def _mebibytes(quantity: str | None) -> int:
    """A memory quantity (`256Mi`, `1Gi`, `512M`, bytes) in MiB; 512 when unset."""
    if not quantity:
        return 512
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if quantity.endswith(suffix) and quantity[: -len(suffix)].replace(".", "", 1).isdigit():
            return max(int(float(quantity[: -len(suffix)]) * factor / 2**20), 1)
    try:
        return max(int(float(quantity) / 2**20), 1)
    except ValueError:
        return 512


class AppVoice:
    """The log lines of a HolmOS web service (a Python HTTP app)."""

    _PATHS = (
        ("GET", "/api/status"),
        ("GET", "/api/v1/items"),
        ("GET", "/api/v1/items/{id}"),
        ("POST", "/api/v1/events"),
        ("GET", "/metrics"),
    )

    def __init__(self, service: str, tag: str, port: int, memory_limit: str | None) -> None:
        self.service, self.tag, self.port = service, tag, port
        self.limit_mib = _mebibytes(memory_limit)
        self.module = service.replace("-", "_")
        self.rng = random.Random()

    def startup(self) -> list[str]:
        return [
            f"INFO  starting {self.service} {self.tag} (python 3.11.9, linux/arm64)",
            f"INFO  loading settings from /etc/{self.service}/config.yaml",
            "INFO  connecting to postgres.holm.svc.cluster.local:5432/holm",
            "INFO  database pool ready (size=5)",
            f"INFO  listening on 0.0.0.0:{self.port}",
        ]

    def request(self) -> str:
        method, path = self.rng.choice(self._PATHS)
        path = path.replace("{id}", str(self.rng.randint(1, 4000)))
        status = self.rng.choices((200, 201, 304, 404), (90, 4, 4, 2))[0]
        if method == "POST":
            status = 201
        took = max(1, int(self.rng.lognormvariate(2.3, 0.6)))
        return f"INFO  {method} {path} {status} {took}ms"

    def probe(self, path: str, status: int) -> str:
        level = "INFO " if status < 400 else "WARN "
        return f"{level} GET {path} {status} {self.rng.randint(1, 3)}ms ua=kube-probe/1.32"

    def dependency_error(self) -> str:
        return (
            "ERROR health check failed: postgres.holm.svc.cluster.local:5432: "
            "connection refused (pool exhausted, 5/5 connections broken)"
        )

    def crash(self) -> list[str]:
        return [
            "ERROR unhandled exception during startup",
            "Traceback (most recent call last):",
            '  File "/app/main.py", line 27, in <module>',
            "    app = create_app(load_settings())",
            "                     ^^^^^^^^^^^^^^^",
            f'  File "/app/{self.module}/settings.py", line 41, in load_settings',
            '    raise ConfigError(f"missing required setting {key!r}")',
            f"{self.module}.settings.ConfigError: missing required setting 'FEATURE_FLAGS_URL'",
        ]

    def heap(self, used_mib: int) -> str:
        share = used_mib * 100 // self.limit_mib
        level = "WARN " if share >= 75 else "INFO "
        return (
            f"{level} memory: rss {used_mib}Mi of {self.limit_mib}Mi limit ({share}%), "
            f"cache entries {used_mib * 1375}"
        )

    def shutdown(self) -> list[str]:
        return [
            "INFO  received SIGTERM, shutting down",
            "INFO  draining 0 open connections",
            "INFO  database pool closed",
        ]


class PostgresVoice(AppVoice):
    """PostgreSQL's own log format."""

    def _prefix(self, pid: int) -> str:
        now = datetime.now(UTC)
        return f"{now:%Y-%m-%d %H:%M:%S}.{now.microsecond // 1000:03d} UTC [{pid}]"

    def startup(self) -> list[str]:
        return [
            "",
            "PostgreSQL Database directory appears to contain a database; Skipping initialization",
            "",
            f"{self._prefix(1)} LOG:  starting PostgreSQL {self.tag} on aarch64-unknown-linux-musl,"
            " compiled by gcc (Alpine 13.2.1_git20231014) 13.2.1 20231014, 64-bit",
            f'{self._prefix(1)} LOG:  listening on IPv4 address "0.0.0.0", port {self.port}',
            f'{self._prefix(1)} LOG:  listening on IPv6 address "::", port {self.port}',
            f'{self._prefix(1)} LOG:  listening on Unix socket "/var/run/postgresql/.s.PGSQL.5432"',
            f"{self._prefix(24)} LOG:  database system was shut down at {self._prefix(0)[:23]} UTC",
            f"{self._prefix(1)} LOG:  database system is ready to accept connections",
        ]

    def request(self) -> str:
        if self.rng.random() < 0.5:
            return f"{self._prefix(22)} LOG:  checkpoint starting: time"
        buffers = self.rng.randint(3, 180)
        return (
            f"{self._prefix(22)} LOG:  checkpoint complete: wrote {buffers} buffers "
            f"({buffers / 163.84:.1f}%); 0 WAL file(s) added, 0 removed, 0 recycled; "
            f"write={buffers / 100:.3f} s, sync=0.004 s, total={buffers / 100 + 0.011:.3f} s"
        )

    def dependency_error(self) -> str:
        return f"{self._prefix(31)} FATAL:  the database system is in recovery mode"

    def crash(self) -> list[str]:
        return [
            f'{self._prefix(1)} FATAL:  could not access file "pg_stat_statements": '
            "No such file or directory",
            f"{self._prefix(1)} LOG:  database system is shut down",
        ]

    def heap(self, used_mib: int) -> str:
        return (
            f"{self._prefix(40)} LOG:  temporary file: path "
            f'"base/pgsql_tmp/pgsql_tmp40.{used_mib}", size {used_mib * 2**20}'
        )

    def shutdown(self) -> list[str]:
        return [
            f"{self._prefix(1)} LOG:  received fast shutdown request",
            f"{self._prefix(1)} LOG:  aborting any active transactions",
            f"{self._prefix(1)} LOG:  database system is shut down",
        ]


def voice_for(repository: str, tag: str, port: int, memory_limit: str | None) -> AppVoice:
    """The voice of an image: PostgreSQL for `postgres`, a web service otherwise."""
    name = repository.rsplit("/", 1)[-1]
    voice_class = PostgresVoice if name == "postgres" else AppVoice
    return voice_class(name, tag, port, memory_limit)
