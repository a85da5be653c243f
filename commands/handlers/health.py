"""`/health`: the cluster at a glance, or one service in depth (runbook 1.3, 2.x, 5.1).

The overview reads nodes, deployments and pods and asks the health aggregator (or, without
one, probes every service's `/health`) all at once, so it costs about one probe timeout. A
service's view reads its deployment, Service, pods and warning events at once, then probes
its `/health` and `/ready` together. Services are probed when a container declares an HTTP
(`httpGet`) liveness or readiness probe: a database on 5432 has no `/health` to ask.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from commands.clients import kubectl
from commands.clients.kube import Kube, KubeError, NotFound
from commands.clients.pods import pod_state
from commands.clients.probes import (
    ProbeFailed,
    ProbeResult,
    aggregator_verdict,
    probe,
    probe_client,
)
from commands.core.config import Config
from commands.core.formatting import age
from commands.core.models import Outcome, Reply, ReplyField, Table, Tone
from commands.core.parser import HealthCommand, close_matches

Obj = dict[str, Any]
HOT_SPOTS = 5
MAX_EVENTS = 5
MAX_SECTION_LINES = 6  # problems shown per overview section; the rest are counted


def _containers(deployment: Obj) -> list[Obj]:
    return deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])


def _serves_http(deployment: Obj) -> bool:
    return any(
        "httpGet" in (container.get(kind) or {})
        for container in _containers(deployment)
        for kind in ("livenessProbe", "readinessProbe")
    )


def _port(deployment: Obj, service: Obj | None) -> int | None:
    """The Service's first port, else the first container port."""
    for port in (service or {}).get("spec", {}).get("ports") or []:
        if port.get("port"):
            return int(port["port"])
    for container in _containers(deployment):
        for port in container.get("ports") or []:
            if port.get("containerPort"):
                return int(port["containerPort"])
    return None


def _availability(deployment: Obj) -> tuple[int, int]:
    """(available, desired) replicas."""
    desired = deployment.get("spec", {}).get("replicas", 1)
    return (deployment.get("status") or {}).get("availableReplicas", 0), desired


# --- advice from the runbook ------------------------------------------------------------------


def _memory_limit(deployment: Obj) -> str:
    limits = [
        (c.get("resources") or {}).get("limits", {}).get("memory") for c in _containers(deployment)
    ]
    return ", ".join(str(limit) for limit in limits if limit) or "none set"


def _advice(reason: str, service: str, deployment: Obj) -> str | None:
    """What the runbook says to do about a pod failing for `reason`."""
    if reason == "OOMKilled":
        return (
            f"OOMKilled: the container ran out of memory (limit {_memory_limit(deployment)}); "
            "increase memory limits (runbook 2.2)"
        )
    if reason in ("CrashLoopBackOff", "Error"):
        return (
            f"{reason}: the container keeps exiting; check /logs {service} --previous (runbook 2.2)"
        )
    if reason in ("ImagePullBackOff", "ErrImagePull", "InvalidImageName"):
        images = ", ".join(kubectl.images(deployment.get("spec", {}).get("template", {})))
        return f"{reason}: check the tag exists in the registry (runbook 2.3): {images}"
    if reason in ("CreateContainerConfigError", "CreateContainerError"):
        return f"{reason}: check the config maps and secrets it uses (runbook 2.2)"
    if reason == "Unschedulable":
        return "Pending: no node can take it; check resources and node affinity (runbook 2.1)"
    return None


# --- one service --------------------------------------------------------------------------------


def _pod_status(pod: Obj) -> str:
    """kubectl's STATUS column, roughly: Terminating, a container's reason, or the phase."""
    state = pod_state(pod)
    if state.terminating:
        return "Terminating"
    if state.failure:
        return state.failure
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        reason = ((status.get("state") or {}).get("waiting") or {}).get("reason")
        if reason:
            return str(reason)
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "Unschedulable":
            return "Unschedulable"
    return state.phase


def _last_termination(pod: Obj) -> str:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (status.get("lastState") or {}).get("terminated")
        if terminated:
            reason = terminated.get("reason") or "Terminated"
            when = age(kubectl.parse_time(terminated.get("finishedAt")))
            return f"{reason} (exit {terminated.get('exitCode', '?')}, {when} ago)"
    return "-"


def _pod_row(pod: Obj) -> list[str]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    total = len(pod.get("spec", {}).get("containers", []))
    return [
        pod["metadata"]["name"],
        _pod_status(pod),
        f"{ready}/{total}",
        str(pod_state(pod).restarts),
        _last_termination(pod),
        age(kubectl.parse_time(pod["metadata"].get("creationTimestamp"))),
    ]


_HASH = "[bcdfghjklmnpqrstvwxz2456789]"


def _related(event: Obj, service: str, pod_names: set[str]) -> bool:
    ref = event.get("involvedObject") or {}
    name, kind = ref.get("name", ""), ref.get("kind")
    if kind == "Deployment":
        return bool(name == service)
    if kind in ("ReplicaSet", "Pod"):
        # NAME-HASH (ReplicaSet) or NAME-HASH-xxxxx (pod), in Kubernetes' vowel-free name
        # alphabet, so another service called NAME-something (nova-api) does not match
        return name in pod_names or bool(
            re.fullmatch(rf"{re.escape(service)}-{_HASH}{{5,10}}(-{_HASH}{{5}})?", name)
        )
    return False


def _event_line(event: Obj) -> str:
    ref = event.get("involvedObject") or {}
    when = kubectl.parse_time(
        event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp")
    )
    count = event.get("count") or 1
    repeat = f" (x{count})" if count > 1 else ""
    return (
        f"{age(when)} ago {event.get('reason')} {str(ref.get('kind', '')).lower()}/"
        f"{ref.get('name')}: {event.get('message', '').strip()}{repeat}"
    )


def _event_key(event: Obj) -> str:
    return str(
        event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp") or ""
    )


async def _optional(call: Any) -> Any:
    """The result of `call`, or None when the object does not exist."""
    try:
        return await call
    except NotFound:
        return None


async def _or_note(call: Any, default: Any, notes: list[str], what: str) -> Any:
    """The result of `call`; when it fails, `default` and a note (the rest still shows)."""
    try:
        return await call
    except KubeError as exc:
        notes.append(f"cannot read {what}: {exc}")
        return default


async def _probe_service(config: Config, name: str, port: int) -> tuple[ProbeResult, ProbeResult]:
    base = config.health.service_url(name, config.namespace, port)
    timeout = config.health.probe_timeout_seconds
    async with probe_client() as client:
        health, ready = await asyncio.gather(
            probe(client, f"{base}/health", timeout), probe(client, f"{base}/ready", timeout)
        )
    return health, ready


def _pods_part(
    pods: list[Obj], service: str, deployment: Obj
) -> tuple[Table | None, list[str], bool]:
    """The pod table, the runbook's advice for what ails the pods, and whether any is unhealthy."""
    pods = sorted(pods, key=lambda p: p["metadata"]["name"])
    reasons = dict.fromkeys(
        reason
        for pod in pods
        for reason in (pod_state(pod).failure, pod_state(pod).last_termination, _pod_status(pod))
        if reason
    )
    advice = [text for reason in reasons if (text := _advice(reason, service, deployment))]
    unhealthy = any(pod_state(pod).unhealthy for pod in pods)
    if not pods:
        return None, ["no pods"], unhealthy
    columns = ["POD", "STATUS", "READY", "RESTARTS", "LAST TERMINATION", "AGE"]
    return Table(columns=columns, rows=[_pod_row(pod) for pod in pods]), advice, unhealthy


def _events_part(events: list[Obj], service: str, pods: list[Obj]) -> list[str]:
    names = {pod["metadata"]["name"] for pod in pods}
    related = [e for e in events if _related(e, service, names)]
    recent = sorted(related, key=_event_key, reverse=True)[:MAX_EVENTS]
    return ["recent warning events:", *(f"  {_event_line(e)}" for e in recent)] if recent else []


async def _probes_part(
    config: Config, service: str, deployment: Obj, svc: Obj | None
) -> tuple[list[ReplyField], bool]:
    """`/health` and `/ready` as reply fields, and whether both answered well."""
    port = _port(deployment, svc)
    if not _serves_http(deployment) or port is None:
        return [ReplyField(name="probes", value="no HTTP health endpoint declared")], True
    health, ready = await _probe_service(config, service, port)
    fields = [
        ReplyField(name="/health", value=health.summary),
        ReplyField(name="/ready", value=ready.summary),
    ]
    return fields, health.ok and ready.ok


async def service_health(service: str, kube: Kube, config: Config) -> Outcome:
    """One service: deployment, pods with advice, `/health` and `/ready`, warning events."""
    notes: list[str] = []
    deployment, svc, pods, events = await asyncio.gather(
        _optional(kube.get_deployment(service)),
        _or_note(_optional(kube.get_service(service)), None, notes, "its Service"),
        kube.list_objects("pods", label_selector=f"app={service}"),
        _or_note(kube.list_objects("events", field_selector="type=Warning"), [], notes, "events"),
    )
    if deployment is None:
        return Outcome(await _unknown_service(kube, service), refused=True)
    available, desired = _availability(deployment)
    updated = (deployment.get("status") or {}).get("updatedReplicas", 0)
    images = ", ".join(kubectl.images(deployment["spec"]["template"]))
    status = kubectl.rollout_status(deployment)
    if desired == 0:  # no pod is meant to serve: nothing to probe
        probe_fields, probes_ok = [ReplyField(name="probes", value="not probed: scaled to 0")], True
    else:
        probe_fields, probes_ok = await _probes_part(config, service, deployment, svc)
    table, advice, unhealthy = _pods_part(pods, service, deployment)
    lines = [
        *([] if status.done else [status.message]),
        *advice,
        *notes,
        *_events_part(events, service, pods),
    ]
    troubled = unhealthy or bool(advice) or not (probes_ok and status.done) or available < desired
    failing = available == 0 and desired > 0
    tone = Tone.ERROR if failing else Tone.WARNING if troubled else Tone.SUCCESS
    verdict = {Tone.ERROR: "down", Tone.WARNING: "degraded"}.get(tone, "healthy")
    if desired == 0 and status.done and not pods:
        tone, verdict = Tone.INFO, "scaled to 0"
    deployment_field = f"{available}/{desired} available, {updated} up to date; {images}"
    return Outcome(
        Reply(
            title=f"{service}: {verdict}, {available}/{desired} available",
            tone=tone,
            lines=lines,
            table=table,
            fields=[ReplyField(name="deployment", value=deployment_field), *probe_fields],
        )
    )


async def _unknown_service(kube: Kube, service: str) -> Reply:
    close = close_matches(service, await kube.deployment_names())
    return Reply(
        title=f"No deployment called {service} in namespace {kube.namespace}",
        tone=Tone.ERROR,
        lines=[f"did you mean {' or '.join(close)}?"] if close else [],
    )


# --- the overview -------------------------------------------------------------------------------


@dataclass
class _Section:
    """One part of the overview: a summary field and the problems it found."""

    name: str
    summary: str
    problems: list[str]

    def shown(self) -> list[str]:
        """The first problems, and how many more there are."""
        more = len(self.problems) - MAX_SECTION_LINES
        extra = [f"and {more} more ({self.name})"] if more > 0 else []
        return self.problems[:MAX_SECTION_LINES] + extra


def _nodes_section(nodes: list[Obj]) -> _Section:
    problems = []
    for node in nodes:
        conditions = {c.get("type"): c for c in (node.get("status") or {}).get("conditions") or []}
        ready = conditions.get("Ready") or {}
        name = node["metadata"]["name"]
        if ready.get("status") != "True":
            why = ready.get("reason") or ready.get("message") or "no Ready condition"
            problems.append(f"node {name} not ready: {why}")
        elif node.get("spec", {}).get("unschedulable"):
            problems.append(f"node {name} is cordoned (SchedulingDisabled)")
    not_ready = sum(1 for p in problems if "not ready" in p)
    return _Section("nodes", f"{len(nodes) - not_ready}/{len(nodes)} ready", problems)


def _deployments_section(deployments: list[Obj]) -> _Section:
    problems = []
    for deployment in sorted(deployments, key=lambda d: d["metadata"]["name"]):
        available, desired = _availability(deployment)
        if available < desired:
            problems.append(f"{deployment['metadata']['name']}: {available}/{desired} available")
    healthy = len(deployments) - len(problems)
    return _Section("deployments", f"{healthy}/{len(deployments)} fully available", problems)


def _pods_section(pods: list[Obj], threshold: int) -> _Section:
    problems = []
    for pod in pods:
        state, status = pod_state(pod), _pod_status(pod)
        if state.terminating or status == "Succeeded" or (status == "Running" and state.ready):
            continue
        not_ready = " (not ready)" if status == "Running" else ""
        problems.append(state.problem or f"{state.name}: {status}{not_ready}")
    hot = sorted(
        (s for s in map(pod_state, pods) if s.restarts >= threshold), key=lambda s: -s.restarts
    )
    if hot:
        spots = ", ".join(
            f"{s.name} {s.restarts}" + (f" ({s.last_termination})" if s.last_termination else "")
            for s in hot[:HOT_SPOTS]
        )
        problems.insert(0, f"restart hot spots: {spots}")
    running = sum(1 for pod in pods if _pod_status(pod) == "Running")
    return _Section("pods", f"{running}/{len(pods)} running", problems)


async def _aggregator_section(url: str, timeout: float) -> _Section:
    """The health aggregator's verdict."""
    try:
        async with probe_client() as client:
            verdict = await aggregator_verdict(client, url, timeout)
    except ProbeFailed as exc:
        return _Section("health aggregator", "unavailable", [str(exc)])
    problems = [f"{name}: {what}" for name, what in verdict.failing.items()]
    summary = f"{verdict.status} ({verdict.checked - len(problems)}/{verdict.checked} healthy)"
    return _Section("health aggregator", summary, problems)


async def _probes_section(
    kube: Kube, config: Config, deployments: Awaitable[list[Obj]]
) -> _Section:
    """Without an aggregator: our own `/health` probe of every HTTP service, all at once."""
    services, listed = await asyncio.gather(kube.list_objects("services"), deployments)
    by_name = {s["metadata"]["name"]: s for s in services}
    targets = {
        d["metadata"]["name"]: port
        for d in listed
        if _serves_http(d) and (port := _port(d, by_name.get(d["metadata"]["name"])))
    }
    timeout = config.health.probe_timeout_seconds
    urls = [
        f"{config.health.service_url(n, config.namespace, p)}/health" for n, p in targets.items()
    ]
    async with probe_client() as client:
        results = await asyncio.gather(*(probe(client, url, timeout) for url in urls))
    problems = [
        f"{name}: /health {result.summary}"
        for name, result in zip(targets, results, strict=True)
        if not result.ok
    ]
    summary = f"{len(targets) - len(problems)}/{len(targets)} healthy"
    return _Section("/health probes", summary, problems)


async def _guard(name: str, section: Any) -> _Section:
    """A section, or one saying it could not be read (the others still show)."""
    try:
        return await section
    except KubeError as exc:
        return _Section(name, "unknown", [f"cannot read {name}: {exc}"])


async def cluster_overview(kube: Kube, config: Config) -> Outcome:
    """Nodes, deployments, pods, restart hot spots and service health, read all at once."""

    listing = asyncio.ensure_future(kube.list_objects("deployments"))  # read once, used twice

    async def nodes() -> _Section:
        return _nodes_section(await kube.list_nodes())

    async def deployments() -> _Section:
        return _deployments_section(await listing)

    async def pods() -> _Section:
        pods = await kube.list_objects("pods")
        return _pods_section(pods, config.rollout.restart_threshold)

    sections = await asyncio.gather(
        _guard("nodes", nodes()),
        _guard("deployments", deployments()),
        _guard("pods", pods()),
        _guard(
            "service health",
            _aggregator_section(config.health.aggregator_url, config.health.probe_timeout_seconds)
            if config.health.aggregator_url
            else _probes_section(kube, config, listing),
        ),
    )
    problems = [p for s in sections for p in s.problems]
    unreadable = all(s.summary == "unknown" for s in sections[:3])
    if unreadable:
        tone, title = Tone.ERROR, "Cannot read the cluster's health"
    elif problems:
        count = len(problems)
        tone, title = Tone.WARNING, f"{config.namespace}: {count} problem{'s' * (count > 1)}"
    else:
        tone, title = Tone.SUCCESS, f"{config.namespace}: all healthy"
    reply = Reply(
        title=title,
        tone=tone,
        lines=[line for section in sections for line in section.shown()],
        fields=[ReplyField(name=s.name, value=s.summary) for s in sections],
    )
    return Outcome(reply, failed=unreadable)


async def show_health(command: HealthCommand, kube: Kube, config: Config) -> Outcome:
    """`/health [SERVICE]`."""
    try:
        if command.service is None:
            return await cluster_overview(kube, config)
        return await service_health(command.service, kube, config)
    except KubeError as exc:
        whose = f"{command.service}'s" if command.service else "the cluster's"
        reply = Reply(title=f"Cannot read {whose} health", tone=Tone.ERROR, lines=[str(exc)])
        return Outcome(reply, failed=True)
