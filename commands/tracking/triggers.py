"""The runbook's rollback triggers (3.3), checked against a rollout's new pods as they change.

- a new pod restarts more than `restart_threshold` times within `restart_window_seconds`;
- a new pod fails health (failing container, or running but not ready) for longer than
  `health_failure_seconds`;
- 100% of the new pods are failing (CrashLoopBackOff, ImagePullBackOff, OOMKilled, Error ...):
  immediately.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from commands.clients.pods import PodState
from commands.core.formatting import human_seconds


@dataclass(frozen=True)
class Trigger:
    """A rollback trigger that fired: the runbook rule, what was seen, and the pod's reason."""

    rule: str  # e.g. "100% of new pods failing"
    detail: str  # e.g. "nova-5f7c9-x2x8k: CrashLoopBackOff"
    reason: str | None  # CrashLoopBackOff, ImagePullBackOff, OOMKilled ... when known

    def __str__(self) -> str:
        return f"{self.rule} ({self.detail})"


class RollbackTriggers:
    """Feed it the new ReplicaSet's pods with a clock reading; it says when a trigger fires."""

    def __init__(
        self, restart_threshold: int, restart_window_seconds: float, health_failure_seconds: float
    ) -> None:
        self.restart_threshold = restart_threshold
        self.restart_window = restart_window_seconds
        self.health_failure = health_failure_seconds
        self._restarts_seen: dict[str, int] = {}
        self._restart_times: dict[str, deque[float]] = {}
        self._unhealthy_since: dict[str, float] = {}

    @property
    def restart_rule(self) -> str:
        window = human_seconds(self.restart_window)
        return f"restarts > {self.restart_threshold} in {window}"

    @property
    def health_rule(self) -> str:
        return f"health failing > {human_seconds(self.health_failure)}"

    def next_deadline(self) -> float | None:
        """When the health trigger would fire if nothing changes (a clock reading), or None."""
        if not self._unhealthy_since:
            return None
        return min(self._unhealthy_since.values()) + self.health_failure

    def observe(self, pods: Iterable[PodState], now: float) -> Trigger | None:
        """Record the new pods' state at `now`; the first trigger that fires, if any."""
        live = [pod for pod in pods if not pod.terminating]
        names = {pod.name for pod in live}
        for table in (self._restarts_seen, self._restart_times, self._unhealthy_since):
            for gone in set(table) - names:
                del table[gone]
        for pod in live:
            self._record(pod, now)
        return (
            self._all_failing(live) or self._restarting(live, now) or self._failing_long(live, now)
        )

    def _record(self, pod: PodState, now: float) -> None:
        # Restarts before a pod was first seen (e.g. tracking resumed after a restart of the
        # bot) happened at unknown times: they are a baseline, not restarts "now".
        increase = pod.restarts - self._restarts_seen.get(pod.name, pod.restarts)
        self._restarts_seen[pod.name] = pod.restarts
        times = self._restart_times.setdefault(pod.name, deque())
        times.extend([now] * max(increase, 0))
        while times and times[0] < now - self.restart_window:
            times.popleft()
        if pod.unhealthy:
            self._unhealthy_since.setdefault(pod.name, now)
        else:
            self._unhealthy_since.pop(pod.name, None)

    def _all_failing(self, pods: list[PodState]) -> Trigger | None:
        if not pods or not all(pod.failure for pod in pods):
            return None
        detail = "; ".join(problem for pod in pods if (problem := pod.problem))
        return Trigger("100% of new pods failing", detail, pods[0].reason)

    def _restarting(self, pods: list[PodState], now: float) -> Trigger | None:
        for pod in pods:
            count = len(self._restart_times.get(pod.name, ()))
            if count > self.restart_threshold:
                window = human_seconds(self.restart_window)
                reason = pod.failure or pod.last_termination
                detail = f"{pod.name} restarted {count} times within {window}"
                return Trigger(
                    self.restart_rule, detail + (f", {reason}" if reason else ""), reason
                )
        return None

    def _failing_long(self, pods: list[PodState], now: float) -> Trigger | None:
        for pod in pods:
            since = self._unhealthy_since.get(pod.name)
            if since is not None and now - since > self.health_failure:
                detail = f"{pod.problem}, for {human_seconds(now - since)}"
                return Trigger(self.health_rule, detail, pod.reason or "Unhealthy")
        return None
