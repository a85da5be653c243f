"""`/logs SERVICE`: the logs of every pod behind `app=SERVICE`, like `kubectl logs -l`.

Every pod's log is read concurrently with timestamps, so lines from several pods are merged in
time order, each prefixed with its pod. With `--grep`, up to `MAX_TAIL` lines per pod are read
and the last `--tail` matching lines (case-insensitive) are kept. Output longer than a chat
message comes as an attachment with the newest lines as a preview.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from commands.clients.kube import Invalid, Kube, KubeError, NotFound
from commands.core.formatting import human_seconds, truncate
from commands.core.models import Attachment, Outcome, Reply, Tone
from commands.core.parser import MAX_TAIL, LogsCommand, close_matches

MAX_MESSAGE_CHARS = 3500
MAX_MESSAGE_LINES = 40
PREVIEW_LINES = 15
PREVIEW_CHARS = 1500
POD_LIMIT_BYTES = 1 << 20  # per pod and container instance, as the API's limitBytes
REFIT_ATTEMPTS = 3  # asking again for fewer lines when a pod's answer was cut
MAX_ATTACHMENT_CHARS = 4 << 20
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
_NO_PREVIOUS = re.compile(r"previous terminated container .* not found")
_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z ")

Obj = dict[str, Any]


class LogsProblem(Exception):
    """A reason there are no logs to show; the message is for the user."""

    def __init__(self, title: str, lines: list[str] | None = None) -> None:
        super().__init__(title)
        self.title, self.lines = title, lines or []


@dataclass(frozen=True)
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
    """What one pod gave: its lines (None: nothing could be read) and a note for the reply."""

    lines: list[LogLine] | None
    note: str | None = None


async def _read_pod(kube: Kube, pod: str, command: LogsCommand, params: dict[str, Any]) -> _PodRead:
    """The pod's lines, the newest that fit in `POD_LIMIT_BYTES`, or why there are none."""
    try:
        data, note = await _newest_that_fit(kube, pod, params)
    except Invalid as exc:
        if _NO_PREVIOUS.search(str(exc)):
            return _PodRead(None, f"no previous (crashed) container for pod {pod}")
        return _PodRead(None, f"pod {pod}: {exc}")
    except NotFound:
        return _PodRead(None, f"pod {pod} is gone")
    lines = _split(pod, data.decode("utf-8", errors="replace"))
    if command.grep:  # like --tail: the last N matching lines of each pod
        needle = command.grep.lower()
        lines = [line for line in lines if needle in line.text.lower()][-command.tail :]
    return _PodRead(lines, note)


async def _newest_that_fit(
    kube: Kube, pod: str, params: dict[str, Any]
) -> tuple[bytes, str | None]:
    """The log, asking again for fewer lines while the API cuts it at `limitBytes`.

    The API keeps the first bytes of the lines asked for, so a cut answer lacks the newest
    ones: ask for as many lines as did fit, until the answer is whole.
    """
    data = await kube.read_pod_log(pod, **params)
    tail = params["tail_lines"]
    for _ in range(REFIT_ATTEMPTS):
        if len(data) < POD_LIMIT_BYTES:
            return data, None if tail == params["tail_lines"] else _fit_note(pod, tail)
        tail = max(1, min(tail, data.count(b"\n")) - 1)
        data = await kube.read_pod_log(pod, **{**params, "tail_lines": tail})
    whole = data[: data.rfind(b"\n") + 1]  # still cut: keep its complete lines
    return whole, _fit_note(pod, whole.count(b"\n"))


def _fit_note(pod: str, lines: int) -> str:
    limit = POD_LIMIT_BYTES >> 20
    return f"pod {pod}: only its newest {lines} lines fit in {limit} MiB"


def _params(command: LogsCommand, container: str | None) -> dict[str, Any]:
    return {
        "container": container,
        "previous": command.previous or None,
        "tail_lines": MAX_TAIL if command.grep else command.tail,
        "since_seconds": command.since_seconds,
        "timestamps": True,
        "limit_bytes": POD_LIMIT_BYTES,
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


def _layout(
    service: str, title: str, lines: list[LogLine], notes: list[str], with_pod: bool
) -> Reply:
    """Lines in the message when they fit, else an attachment and a preview of the newest."""
    short = [line.render(with_pod, short_time=True) for line in lines]
    if len(short) <= MAX_MESSAGE_LINES and sum(len(s) + 1 for s in short) <= MAX_MESSAGE_CHARS:
        return Reply(title=title, lines=[*notes, *short])
    full = "\n".join(line.render(with_pod, short_time=False) for line in lines) + "\n"
    in_file = f"all {len(lines)}"
    if len(full) > MAX_ATTACHMENT_CHARS:
        full = full[-MAX_ATTACHMENT_CHARS:].split("\n", 1)[-1]
        kept = full.count("\n")
        in_file = f"the newest {kept} of {len(lines)}"
    preview: list[str] = []
    for line in reversed(short[-PREVIEW_LINES:]):
        if sum(len(s) + 1 for s in preview) + len(line) > PREVIEW_CHARS:
            if not preview:  # one very long line: show its start
                preview.append(truncate(line, PREVIEW_CHARS))
            break
        preview.insert(0, line)
    notes = [*notes, f"newest {len(preview)} lines below; {in_file} in the file"]
    return Reply(
        title=title,
        lines=[*notes, *preview],
        attachment=Attachment(filename=f"{service}-logs.txt", content=full),
    )


async def show_logs(command: LogsCommand, kube: Kube) -> Outcome:
    """`/logs SERVICE ...` -> a reply with the lines, or an attachment and a preview."""
    try:
        pods = await _pods(kube, command.service)
        container = _pick_container(pods, command.container)
        params = _params(command, container)
        results = await asyncio.gather(
            *(_read_pod(kube, pod["metadata"]["name"], command, params) for pod in pods)
        )
    except LogsProblem as problem:
        reply = Reply(title=problem.title, tone=Tone.WARNING, lines=problem.lines)
        return Outcome(reply, refused=True)
    except KubeError as exc:
        return _failed(command.service, exc)
    notes = [result.note for result in results if result.note]
    read = [result.lines for result in results if result.lines is not None]
    if not read:
        title = f"No logs for {command.service}"
        return Outcome(Reply(title=title, tone=Tone.WARNING, lines=notes))
    lines = sorted((line for pod_lines in read for line in pod_lines), key=lambda ln: ln.key)
    title = _describe(command, len(read), len(lines))
    return Outcome(_layout(command.service, title, lines, notes, with_pod=len(pods) > 1))
