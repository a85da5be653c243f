"""The bot's Prometheus metrics, in a registry of its own, served on `/metrics` by the probes.

Adapters count their chat API calls through the methods here; the command layer's audit
listener counts commands. Labels are bounded: platform, a method or route name without ids,
a command name, an outcome.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from commands.core.models import Platform
from commands.store.state import AuditEntry


class Metrics:
    """Every figure `/metrics` reports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.commands = Counter(
            "holmbot_commands",
            "Commands handled, by name and outcome",
            ["command", "outcome"],
            registry=r,
        )
        self.command_seconds = Histogram(
            "holmbot_command_duration_seconds",
            "Time to answer a command",
            ["command"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.approvals_pending = Gauge(
            "holmbot_approvals_pending", "Approval requests waiting for votes", registry=r
        )
        self.operations_tracked = Gauge(
            "holmbot_operations_tracked", "Rollouts and backups being followed", registry=r
        )
        self.chat_calls = Counter(
            "holmbot_chat_api_calls",
            "Chat API calls, by platform, method and status",
            ["platform", "method", "status"],
            registry=r,
        )
        self.chat_errors = Counter(
            "holmbot_chat_api_errors",
            "Chat API calls that failed without an answer",
            ["platform", "method"],
            registry=r,
        )
        self.rate_limits = Counter(
            "holmbot_chat_rate_limited",
            "Chat API calls answered 429",
            ["platform", "method"],
            registry=r,
        )
        self.reconnects = Counter(
            "holmbot_chat_reconnects",
            "Chat connections re-established",
            ["platform"],
            registry=r,
        )
        self.last_event = Gauge(
            "holmbot_chat_last_event_timestamp_seconds",
            "Unix time of the last event received from each platform",
            ["platform"],
            registry=r,
        )
        self.seconds_since_event = Gauge(
            "holmbot_chat_seconds_since_last_event",
            "Seconds since the last event from each platform",
            ["platform"],
            registry=r,
        )
        self._last_event_at: dict[str, float] = {}

    def command_done(self, entry: AuditEntry) -> None:
        """An audit listener: counts the command of every finished audit entry."""
        name = entry.action or (entry.command.split(maxsplit=1) or ["(none)"])[0]
        self.commands.labels(name, str(entry.outcome)).inc()
        if entry.duration_ms is not None:
            self.command_seconds.labels(name).observe(entry.duration_ms / 1000)

    def chat_call(self, platform: Platform, method: str, status: int | str) -> None:
        self.chat_calls.labels(str(platform), method, str(status)).inc()

    def rate_limited(self, platform: Platform, method: str) -> None:
        self.rate_limits.labels(str(platform), method).inc()

    def chat_error(self, platform: Platform, method: str) -> None:
        self.chat_errors.labels(str(platform), method).inc()

    def reconnect(self, platform: Platform) -> None:
        self.reconnects.labels(str(platform)).inc()

    def event_seen(self, platform: Platform) -> None:
        now = time.time()
        self._last_event_at[str(platform)] = now
        self.last_event.labels(str(platform)).set(now)

    def refresh(self) -> None:
        """Bring the time-since gauges up to date (called before each scrape)."""
        now = time.time()
        for platform, at in self._last_event_at.items():
            self.seconds_since_event.labels(platform).set(now - at)
