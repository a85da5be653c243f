"""`/logs SERVICE`: the logs of every pod behind `app=SERVICE`, like `kubectl logs -l`.

Every pod's log is read concurrently with timestamps, so lines from several pods are merged in
time order, each prefixed with its pod. With `--grep`, up to `MAX_TAIL` lines per pod are read
and the last `--tail` matching lines (case-insensitive) are kept.

What is read is bounded: `logs.max_total_bytes` across all pods, shared equally (at most
`POD_LIMIT_BYTES` each), newest lines kept. Decoding, merging and rendering run on a worker
thread, not the event loop. The reply holds the newest `SHOWN_LINES` lines (short times; more
than any renderer shows) and the whole log as an attachment (full timestamps); each renderer
shows what fits its platform and sends the file when it cuts.
"""

from __future__ import annotations

import asyncio
import heapq
import io
import re
from dataclasses import dataclass
from typing import Any

from commands.clients.kube import Invalid, Kube, KubeError, NotFound
from commands.core.formatting import human_seconds
from commands.core.models import Attachment, Outcome, Reply, ReplyField, Tone
from commands.core.parser import MAX_TAIL, LogsCommand, close_matches

SHOWN_LINES = 200  # the newest lines in the reply: every renderer shows fewer, the file has all
POD_LIMIT_BYTES = 1 << 20  # per pod and container instance, as the API's limitBytes
REFIT_ATTEMPTS = 3  # asking again for fewer lines when a pod's answer was cut
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
_NO_PREVIOUS = re.compile(r"previous terminated container .* not found")
_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z ")

Obj = dict[str, Any]


class LogsProblem(Exception):
    """A reason there are no logs to show; the message is for the user."""

    def __init__(self, title: str, lines: list[str] | None = None) -> None:
        super().__init__(title)
        self.title, self.lines = title, lines or []


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line from one pod, with a sort key from its kubelet timestamp."""

    key: str  # `YYYY-MM-DDTHH:MM:SS.nnnnnnnnn`, sortable as text
    pod: str
    text: str

    def render(self, with_pod: bool, short_time: bool) -> str:
        stamp = self.key[11:19] if short_time else self.key + "Z"
        return f"{f'[{self.pod}] ' if with_pod else ''}{stamp} {self.text}"


def _split(pod: str, raw: str) -> list[LogLine]:
    """Log text read with `timestamps=true` -> lines with sortable timestamps."""
    lines = []
    for text in raw.splitlines():
        match = _TIMESTAMP.match(text)
        if match is None:  # not stamped (should not happen): keep it, sorted first
            lines.append(LogLine("", pod, text))
            continue
        fraction = (match.group(2) or "").ljust(9, "0")[:9]
        lines.append(LogLine(f"{match.group(1)}.{fraction}", pod, text[match.end() :]))
    return lines


def _containers(pod: Obj) -> list[str]:
    return [c["name"] for c in pod.get("spec", {}).get("containers", [])]


def _pick_container(pods: list[Obj], wanted: str | None) -> str | None:
    """The container to read in every pod, or a `LogsProblem` saying what to pass."""
    names = list(dict.fromkeys(name for pod in pods for name in _containers(pod)))
    if wanted is not None:
        if wanted not in names:
            raise LogsProblem(
                f"No container {wanted} in these pods",
                [f"containers: {', '.join(names)}"],
            )
        return wanted
    if len(names) <= 1:
        return None
    defaults = {
        pod.get("metadata", {}).get("annotations", {}).get(DEFAULT_CONTAINER_ANNOTATION)
        for pod in pods
    }
    if len(defaults) == 1 and (default := defaults.pop()) in names:
        return default
    raise LogsProblem(
        f"These pods have {len(names)} containers; pick one with --container",
        [f"containers: {', '.join(names)}"],
    )


@dataclass
class _PodRead:
    """What one pod gave: its log (None: nothing could be read) and a note for the reply."""

    pod: str
    data: bytes | None
    note: str | None = None

    def take_lines(self, grep: str | None, tail: int) -> list[LogLine]:
        """The decoded lines (the raw bytes are let go); with `grep`, the last `tail` that match
        (like --tail)."""
        data, self.data = self.data or b"", None
        lines = _split(self.pod, data.decode("utf-8", errors="replace"))
        del data
        if grep:
            needle = grep.lower()
            lines = [line for line in lines if needle in line.text.lower()][-tail:]
        return lines


async def _read_pod(kube: Kube, pod: str, params: dict[str, Any]) -> _PodRead:
    """The pod's log, the newest lines that fit in `params["limit_bytes"]`, or why there is none."""
    try:
        data, note = await _newest_that_fit(kube, pod, params)
    except Invalid as exc:
        if _NO_PREVIOUS.search(str(exc)):
            return _PodRead(pod, None, f"no previous (crashed) container for pod {pod}")
        return _PodRead(pod, None, f"pod {pod}: {exc}")
    except NotFound:
        return _PodRead(pod, None, f"pod {pod} is gone")
    return _PodRead(pod, data, note)


async def _newest_that_fit(
    kube: Kube, pod: str, params: dict[str, Any]
) -> tuple[bytes, str | None]:
    """The log, asking again for fewer lines while the API cuts it at `limitBytes`.

    The API keeps the first bytes of the lines asked for, so a cut answer lacks the newest
    ones: ask for as many lines as did fit, until the answer is whole.
    """
    limit = params["limit_bytes"]
    data = await kube.read_pod_log(pod, **params)
    tail = params["tail_lines"]
    for _ in range(REFIT_ATTEMPTS):
        if len(data) < limit:
            return data, None if tail == params["tail_lines"] else _fit_note(pod, tail, limit)
        tail = max(1, min(tail, data.count(b"\n")) - 1)
        data = await kube.read_pod_log(pod, **{**params, "tail_lines": tail})
    whole = data[: data.rfind(b"\n") + 1]  # still cut: keep its complete lines
    return whole, _fit_note(pod, whole.count(b"\n"), limit)


def _fit_note(pod: str, lines: int, limit: int) -> str:
    size = f"{limit >> 20} MiB" if limit % (1 << 20) == 0 else f"{limit >> 10} KiB"
    return f"pod {pod}: only its newest {lines} lines fit in {size}"


def _params(command: LogsCommand, container: str | None, limit_bytes: int) -> dict[str, Any]:
    return {
        "container": container,
        "previous": command.previous or None,
        "tail_lines": MAX_TAIL if command.grep else command.tail,
        "since_seconds": command.since_seconds,
        "timestamps": True,
        "limit_bytes": limit_bytes,
    }


async def _pods(kube: Kube, service: str) -> list[Obj]:
    pods = await kube.list_objects("pods", label_selector=f"app={service}")
    if pods:
        return sorted(pods, key=lambda p: p["metadata"]["name"])
    names = await kube.deployment_names()
    if service in names:
        raise LogsProblem(f"{service} has no pods (scaled to 0?)")
    close = close_matches(service, names)
    hint = [f"did you mean {' or '.join(close)}?"] if close else []
    raise LogsProblem(f"No pods with app={service} in namespace {kube.namespace}", hint)


def _describe(command: LogsCommand, pods: int, shown: int) -> str:
    what = "previous (crashed) containers" if command.previous else f"{pods} pod{'s' * (pods > 1)}"
    parts = [f"{command.service} logs: {shown} line{'s' * (shown != 1)} from {what}"]
    if command.grep:
        parts.append(f"matching {command.grep!r}")
    if command.since_seconds:
        parts.append(f"from the last {human_seconds(command.since_seconds)}")
    return " ".join(parts)


def _failed(service: str, exc: KubeError) -> Outcome:
    reply = Reply(title=f"Cannot read {service} logs", tone=Tone.ERROR, lines=[str(exc)])
    return Outcome(reply, failed=True)


def _assemble(command: LogsCommand, results: list[_PodRead], with_pod: bool) -> Reply:
    """Decode, merge in time order and render (CPU work: run off the event loop)."""
    notes = [result.note for result in results if result.note]
    read = [result for result in results if result.data is not None]
    if not read:
        return Reply(title=f"No logs for {command.service}", tone=Tone.WARNING, lines=notes)
    per_pod = [result.take_lines(command.grep, command.tail) for result in read]
    lines = list(heapq.merge(*per_pod, key=lambda line: line.key))  # each pod's is in order
    del per_pod
    full = io.BytesIO()  # written line by line: no list of every line's bytes on the way
    for line in lines:
        full.write(f"{line.render(with_pod, short_time=False)}\n".encode())
    shown = [line.render(with_pod, short_time=True) for line in lines[-SHOWN_LINES:]]
    return Reply(
        title=_describe(command, len(read), len(lines)),
        lines=shown,
        omitted_lines=len(lines) - len(shown),
        fields=[ReplyField(name="note", value=note) for note in notes],
        attachment=Attachment(filename=f"{command.service}-logs.txt", content=full.getvalue()),
    )


async def show_logs(command: LogsCommand, kube: Kube, max_total_bytes: int = 4 << 20) -> Outcome:
    """`/logs SERVICE ...` -> every line read (within `max_total_bytes`), and the whole log as
    a file for renderers that cannot show it all."""
    try:
        pods = await _pods(kube, command.service)
        container = _pick_container(pods, command.container)
        limit = min(POD_LIMIT_BYTES, max(1, max_total_bytes // len(pods)))
        params = _params(command, container, limit)
        results = await asyncio.gather(
            *(_read_pod(kube, pod["metadata"]["name"], params) for pod in pods)
        )
    except LogsProblem as problem:
        reply = Reply(title=problem.title, tone=Tone.WARNING, lines=problem.lines)
        return Outcome(reply, refused=True)
    except KubeError as exc:
        return _failed(command.service, exc)
    reply = await asyncio.to_thread(_assemble, command, list(results), len(pods) > 1)
    return Outcome(reply)
