"""Rollouts in chat: how soon a Deployment's status change shows in its chat message, how the
bot edits under 429s with 20 rollouts at once, and the chat API calls one rollout costs.

The benchmark adds Deployments `bench-01` ... (copies of a seeded one, 3 replicas) and rolls
them out with `restart SERVICE` from Slack (`/holmbot restart ...`) and Discord (`/holmbot
text:restart ...`) to `holmbot run` with both adapters connected.

- Status change to chat: the sandbox's API server calls back on every write; each change of
  a bench Deployment's `kubectl rollout status` message is one status change, at the time it
  was stored. It has reached chat at the first post or edit (arrived at the local Slack or
  Discord) that shows it or a later status of the same rollout: an edit that coalesced
  several changes answers them all. Rollouts one at a time, on each platform.
- 20 at once, half on each platform, with a share of edits answered 429 (Slack: `Retry-After`;
  Discord: `Retry-After`, `X-RateLimit-*` and `Via`, and Discord's 5 edits per 5 s per channel):
  the most edits one message got within any second, the 429s met, and the rollouts whose
  message did not end on their final state (lost).
- Calls per rollout: every chat API call made from the command to the end, by method.

    python3 -m bench.chat.rollouts [--rollouts 3] [--concurrent 20] [--share 0.2] [--speed 2]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import re
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config

from bench.chat.figures import machine, ms, percentile, row
from bench.chat.rig import DISCORD_CHANNEL, DISCORD_OPERATOR, SLACK_CHANNEL, Rig, chat_rig
from commands.clients.kubectl import rollout_status
from sandbox.resources import DEPLOYMENTS
from sandbox.seed import NAMESPACE
from sandbox.store import Change

TEMPLATE = "claude-pod"  # the seeded Deployment the bench ones copy
REPLICAS = 3
ROLLOUT_TIMEOUT = 180.0
LATENCY_TARGET_P95 = 1.2
SERVICE_NAME = re.compile(r"bench-\d\d")
DONE = "successfully rolled out"


def bench_name(n: int) -> str:
    return f"bench-{n:02d}"


def strings(node: Any) -> Iterator[str]:
    """Every string in a JSON-like value: what a message body can show."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


@dataclass(frozen=True)
class Shown:
    """One version of a bot message as the chat server stored it: when, which message, what
    it showed. A message's first version is its post, the others its edits."""

    at: float
    message: str  # platform and message id
    text: str


def shown_since(rig: Rig, since: float) -> list[Shown]:
    """Every version of the bot's messages stored since `since`, in arrival order."""
    seen = [
        Shown(version["at"], f"slack:{message.ts}", "\n".join(strings(version)))
        for message in rig.slack.posted()
        for version in message.versions
        if version["at"] >= since
    ]
    seen += [
        Shown(version["at"], f"discord:{message.id}", "\n".join(strings(version)))
        for message in rig.discord.posted()
        for version in message.versions
        if version["at"] >= since
    ]
    return sorted(seen, key=lambda s: s.at)


@dataclass
class StatusLog:
    """Each bench Deployment's rollout-status messages, as the API server stored them."""

    changes: dict[str, list[tuple[float, str]]] = field(default_factory=dict)

    def __call__(self, change: Change) -> None:
        name = change.new["metadata"]["name"]
        if change.resource is not DEPLOYMENTS or not SERVICE_NAME.fullmatch(name):
            return
        message = rollout_status(change.new).message
        log = self.changes.setdefault(name, [])
        if not log or log[-1][1] != message:
            log.append((time.monotonic(), message))

    def since(self, name: str, at: float) -> list[tuple[float, str]]:
        return [(t, m) for t, m in self.changes.get(name, []) if t >= at]


def latencies(
    statuses: list[tuple[float, str]], shown: list[Shown]
) -> tuple[list[float], list[str]]:
    """For each status change, the seconds until chat showed it or a later one; and the
    changes chat never caught up with."""
    caught: list[float | None] = [None] * len(statuses)
    for item in shown:
        showing = [
            i for i, (t, message) in enumerate(statuses) if t <= item.at and message in item.text
        ]
        if not showing:
            continue
        for i in range(max(showing) + 1):
            if caught[i] is None:
                caught[i] = item.at - statuses[i][0]
    found = [c for c in caught if c is not None]
    missed = [statuses[i][1] for i, c in enumerate(caught) if c is None]
    return found, missed


class Cluster:
    """The bench Deployments, made and waited for through the Kubernetes API."""

    def __init__(self, rig: Rig) -> None:
        self.api = config.new_client_from_config(str(rig.sandbox.kubeconfig))
        self.apps = client.AppsV1Api(self.api)

    async def add(self, count: int) -> list[str]:
        """`count` copies of the template Deployment, 3 replicas each, all available."""
        template = await asyncio.to_thread(
            self.apps.read_namespaced_deployment, TEMPLATE, NAMESPACE
        )
        body = self.api.sanitize_for_serialization(template)
        names = [bench_name(n + 1) for n in range(count)]
        for name in names:
            labels = {"app": name}
            spec = body["spec"] | {"replicas": REPLICAS, "selector": {"matchLabels": labels}}
            spec["template"] = spec["template"] | {
                "metadata": {"labels": labels},
            }
            fresh = {"apiVersion": "apps/v1", "kind": "Deployment"}
            fresh |= {"metadata": {"name": name, "labels": labels}, "spec": spec}
            await asyncio.to_thread(self.apps.create_namespaced_deployment, NAMESPACE, fresh)
        await asyncio.gather(*(self.settled(name) for name in names))
        return names

    async def settled(self, name: str) -> None:
        deadline = time.monotonic() + ROLLOUT_TIMEOUT
        while True:
            read = await asyncio.to_thread(self.apps.read_namespaced_deployment, name, NAMESPACE)
            if rollout_status(self.api.sanitize_for_serialization(read)).done:
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} did not roll out")
            await asyncio.sleep(0.2)

    def close(self) -> None:
        self.api.close()


async def restart(rig: Rig, platform: str, service: str) -> None:
    """`restart SERVICE` as an operator types it on `platform`."""
    if platform == "slack":
        await rig.slack.command(
            "/holmbot", f"restart {service}", user="UOPS", channel=SLACK_CHANNEL
        )
    else:
        text = f"restart {service}"
        await rig.discord.slash(DISCORD_OPERATOR, DISCORD_CHANNEL, "holmbot", text=text)


async def until_shown_done(rig: Rig, service: str, since: float, count: int = 1) -> None:
    """Wait until chat has shown `service` rolled out `count` times since `since`."""
    deadline = time.monotonic() + ROLLOUT_TIMEOUT
    marker = f'deployment "{service}" {DONE}'
    while sum(1 for s in shown_since(rig, since) if marker in s.text) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"chat never showed {service} rolled out")
        await asyncio.sleep(0.1)


def calls_since(rig: Rig, since: float) -> Counter[str]:
    """Every chat API call since `since`, by platform and method (429s counted apart)."""
    counted: Counter[str] = Counter()
    for call in rig.slack.calls:
        if call.at >= since:
            counted[f"Slack {call.method}" + (" (429)" if call.status == 429 else "")] += 1
    for dcall in rig.discord.calls:
        if dcall.at >= since:
            counted[f"Discord {dcall.route}" + (" (429)" if dcall.status == 429 else "")] += 1
    return counted


@dataclass
class LatencyFigures:
    found: list[float] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    calls: dict[str, Counter[str]] = field(default_factory=dict)  # per platform, its last rollout


async def one_at_a_time(rig: Rig, log: StatusLog, services: list[str], per: int) -> LatencyFigures:
    figures = LatencyFigures()
    for platform in ("slack", "discord"):
        for n in range(per):
            service = services[n % len(services)]
            started = time.monotonic()
            await restart(rig, platform, service)
            await until_shown_done(rig, service, started)
            await asyncio.sleep(1.0)  # the result's reply and the last edits
            statuses = log.since(service, started)
            shown = [s for s in shown_since(rig, started) if service in s.text]
            found, missed = latencies(statuses, shown)
            figures.found += found
            figures.missed += missed
            figures.calls[platform] = calls_since(rig, started)  # the last: warmed up
    return figures


@dataclass
class BurstFigures:
    """One platform's share of the rollouts started at once."""

    rollouts: int
    most_edits_in_a_second: int
    smallest_gap: float
    rate_limited: int
    lost: list[str]


def by_message(shown: list[Shown]) -> dict[str, list[Shown]]:
    versions: dict[str, list[Shown]] = {}
    for item in shown:
        versions.setdefault(item.message, []).append(item)
    return versions


def progress_messages(shown: list[Shown], service: str) -> list[list[Shown]]:
    """The versions of each message about `service` (named in its first version)."""
    return [
        versions
        for versions in by_message(shown).values()
        if SERVICE_NAME.findall(versions[0].text)[:1] == [service]
    ]


def most_in_a_second(times: list[float]) -> int:
    return max((sum(1 for t in times if a <= t < a + 1.0) for a in times), default=0)


def burst_figures(shown: list[Shown], services: list[str], rate_limited: int) -> BurstFigures:
    """Edits per message per second, the smallest gap between two edits of one message, and
    the services whose progress message did not end on their final state."""
    edits = [[v.at for v in versions[1:]] for versions in by_message(shown).values()]
    gaps = [b - a for times in edits for a, b in itertools.pairwise(times)]
    lost = [
        service
        for service in services
        if not any(DONE in versions[-1].text for versions in progress_messages(shown, service))
    ]
    most = max(map(most_in_a_second, edits), default=0)
    return BurstFigures(len(services), most, min(gaps, default=float("inf")), rate_limited, lost)


async def at_once(
    rig: Rig, services: list[str], share: float
) -> tuple[dict[str, BurstFigures], float]:
    """Every service restarted at once, half from each platform, with 429s on edits; the
    figures per platform and how long until chat showed every one done."""
    rig.slack.limit("chat.update", share)
    rig.discord.edit_429_share = share
    started = time.monotonic()
    platforms = {name: ("slack", "discord")[n % 2] for n, name in enumerate(services)}
    await asyncio.gather(*(restart(rig, p, s) for s, p in platforms.items()))
    await asyncio.gather(*(until_shown_done(rig, s, started) for s in services))
    took = time.monotonic() - started
    await asyncio.sleep(2.0)  # anything still due
    rig.slack.limit("chat.update", 0.0)
    rig.discord.edit_429_share = 0.0
    shown = shown_since(rig, started)
    slack_429 = sum(1 for c in rig.slack.calls if c.at >= started and c.status == 429)
    discord_429 = sum(1 for c in rig.discord.calls if c.at >= started and c.status == 429)
    figures = {}
    for platform, limited in (("slack", slack_429), ("discord", discord_429)):
        mine = [s for s in shown if s.message.startswith(f"{platform}:")]
        ours = [s for s, p in platforms.items() if p == platform]
        figures[platform] = burst_figures(mine, ours, limited)
    return figures, took


async def measure(
    rig: Rig, per: int, concurrent: int, share: float
) -> tuple[LatencyFigures, dict[str, BurstFigures], float]:
    log = StatusLog()
    rig.sandbox.store.add_listener(log)
    cluster = Cluster(rig)
    try:
        services = await cluster.add(concurrent)
        latency = await one_at_a_time(rig, log, services, per)
        burst, took = await at_once(rig, services, share)
    finally:
        cluster.close()
    return latency, burst, took


def report(
    latency: LatencyFigures, burst: dict[str, BurstFigures], took: float, share: float
) -> list[str]:
    """The table rows and the call counts, as printed."""
    found = latency.found
    lines = [
        row("figure", "measured", "target"),
        row("---", "---", "---"),
        row(
            "Deployment status change to the chat message showing it",
            f"p50 {ms(percentile(found, 0.5))}, p95 {ms(percentile(found, 0.95))}, "
            f"max {ms(max(found))} ({len(found)} changes, {len(latency.missed)} never shown)",
            f"p95 <= {ms(LATENCY_TARGET_P95)}",
        ),
    ]
    rollouts = sum(b.rollouts for b in burst.values())
    for platform, figures in burst.items():
        lines.append(
            row(
                f"{rollouts} rollouts at once ({figures.rollouts} from {platform}), "
                f"{share:.0%} of edits answered 429",
                f"at most {figures.most_edits_in_a_second} edit(s) in any second per message "
                f"(closest {ms(figures.smallest_gap)} apart), {figures.rate_limited} 429s met, "
                f"{len(figures.lost)} final states lost",
                "<= 1 edit/s/message, 0 lost",
            )
        )
    lines.append(f"\nall {rollouts} shown done in chat {took:.1f} s after they were asked for")
    for platform, calls in latency.calls.items():
        lines.append(f"\nchat API calls of one rollout from {platform}:")
        lines += [f"  {count:3d}  {name}" for name, count in sorted(calls.items())]
    return lines


async def _bench(args: argparse.Namespace, state: Path) -> None:
    async with chat_rig(state, args.speed) as world, world.bot():
        latency, burst, took = await measure(world, args.rollouts, args.concurrent, args.share)
    print(f"holmbot run, Slack and Discord connected; {machine()}; sandbox speed x{args.speed:g}")
    print(
        f"{args.rollouts} rollouts one at a time per platform, then {args.concurrent} at once, "
        f"{REPLICAS} replicas each\n"
    )
    print("\n".join(report(latency, burst, took, args.share)))
    for figures in burst.values():
        if figures.lost:
            print(f"lost: {', '.join(figures.lost)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=3, help="one at a time, per platform")
    parser.add_argument("--concurrent", type=int, default=20, help="rollouts at once")
    parser.add_argument("--share", type=float, default=0.2, help="share of edits answered 429")
    parser.add_argument("--speed", type=float, default=2.0, help="the sandbox's time scale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="holmbot-bench-") as state:
        asyncio.run(_bench(args, Path(state)))


if __name__ == "__main__":
    main()
