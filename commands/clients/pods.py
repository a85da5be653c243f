"""What a pod's status says about its health: failing reasons, readiness, restarts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from commands.clients.kubectl import controller_uid

Obj = dict[str, Any]

# Container states that mean the container cannot run (a pod in one of them is failing).
FAILING_WAITING = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
FAILING_TERMINATED = frozenset({"OOMKilled", "Error", "ContainerCannotRun"})
PULL_FAILURES = frozenset({"ImagePullBackOff", "ErrImagePull", "InvalidImageName"})


@dataclass(frozen=True)
class PodState:
    """One pod's health at a glance."""

    name: str
    owner_uid: str | None  # the controlling ReplicaSet
    phase: str
    ready: bool
    restarts: int
    failure: str | None  # CrashLoopBackOff, ImagePullBackOff, OOMKilled, Error ...
    last_termination: str | None  # lastState.terminated.reason, e.g. OOMKilled
    terminating: bool
    exit_code: int | None = None  # of the failing (or last) termination

    @property
    def reason(self) -> str | None:
        """The failure as a rollout's reason: ImagePullBackOff, OOMKilled or CrashLoopBackOff.

        A container that exits with an error is restarted into CrashLoopBackOff; one whose
        last run was OOMKilled is reported as OOMKilled, its root cause.
        """
        cause = self.failure or self.last_termination
        if cause is None:
            return None
        if cause in PULL_FAILURES:
            return "ImagePullBackOff"
        if "OOMKilled" in (self.failure, self.last_termination):
            return "OOMKilled"
        if cause in FAILING_TERMINATED or cause in ("CrashLoopBackOff", "RunContainerError"):
            return "CrashLoopBackOff"
        return cause

    @property
    def unhealthy(self) -> bool:
        """Failing, or running but not ready."""
        return self.failure is not None or (self.phase == "Running" and not self.ready)

    @property
    def problem(self) -> str | None:
        """`name: CrashLoopBackOff (last terminated: OOMKilled, 4 restarts)`, or None if fine."""
        if not self.unhealthy:
            return None
        what = self.failure or "not ready"
        details = []
        if self.exit_code and self.failure in FAILING_TERMINATED:
            details.append(f"exit code {self.exit_code}")
        if self.last_termination and self.last_termination != self.failure:
            details.append(f"last terminated: {self.last_termination}")
        if self.restarts:
            details.append(f"{self.restarts} restart{'s' if self.restarts != 1 else ''}")
        suffix = f" ({', '.join(details)})" if details else ""
        return f"{self.name}: {what}{suffix}"


def _container_failure(status: Obj) -> str | None:
    state = status.get("state") or {}
    waiting = (state.get("waiting") or {}).get("reason")
    if waiting in FAILING_WAITING:
        return waiting
    terminated = state.get("terminated")
    if terminated:
        reason = terminated.get("reason")
        if reason in FAILING_TERMINATED:
            return reason
        if terminated.get("exitCode", 0) != 0:
            return "Error"
    return None


def pod_state(pod: Obj) -> PodState:
    """Read one pod's status."""
    metadata, status = pod["metadata"], pod.get("status") or {}
    statuses = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]
    failure = next((f for s in statuses if (f := _container_failure(s))), None)
    exit_code = next(
        (
            code
            for s in statuses
            for state in (s.get("state"), s.get("lastState"))
            if (code := ((state or {}).get("terminated") or {}).get("exitCode"))
        ),
        None,
    )
    last = next(
        (
            reason
            for s in statuses
            if (reason := ((s.get("lastState") or {}).get("terminated") or {}).get("reason"))
        ),
        None,
    )
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return PodState(
        name=metadata["name"],
        owner_uid=controller_uid(pod),
        phase=status.get("phase", "Pending"),
        ready=ready,
        restarts=sum(s.get("restartCount", 0) for s in statuses),
        failure=failure,
        last_termination=last,
        terminating=bool(metadata.get("deletionTimestamp")),
        exit_code=exit_code,
    )
