"""The runbook's rollback triggers (3.3) against pod states over time."""

from __future__ import annotations

from commands.clients.pods import PodState, pod_state
from commands.tracking.triggers import RollbackTriggers


def pod(
    name: str, *, restarts: int = 0, failure: str | None = None, ready: bool = True
) -> PodState:
    return PodState(
        name=name,
        owner_uid="rs",
        phase="Running",
        ready=ready,
        restarts=restarts,
        failure=failure,
        last_termination=None,
        terminating=False,
    )


def triggers() -> RollbackTriggers:
    return RollbackTriggers(
        restart_threshold=3, restart_window_seconds=300, health_failure_seconds=120
    )


def test_all_new_pods_failing_fires_at_once() -> None:
    fired = triggers().observe([pod("a", failure="CrashLoopBackOff")], now=0)
    assert fired is not None
    assert fired.rule == "100% of new pods failing"
    assert fired.reason == "CrashLoopBackOff"


def test_one_failing_pod_of_two_is_not_all() -> None:
    assert triggers().observe([pod("a", failure="ImagePullBackOff"), pod("b")], now=0) is None


def test_more_than_threshold_restarts_within_window() -> None:
    checks = triggers()
    healthy = pod("b")
    assert checks.observe([pod("a", restarts=0), healthy], now=0) is None
    assert checks.observe([pod("a", restarts=3), healthy], now=10) is None
    fired = checks.observe([pod("a", restarts=4), healthy], now=20)
    assert fired is not None and fired.rule == "restarts > 3 in 5m"


def test_restarts_spread_beyond_the_window_do_not_fire() -> None:
    checks = triggers()
    healthy = pod("b")
    for step in range(1, 8):
        assert checks.observe([pod("a", restarts=step), healthy], now=step * 200) is None


def test_unhealthy_longer_than_health_window_fires_with_a_deadline() -> None:
    checks = triggers()
    healthy = pod("b")
    assert checks.observe([pod("a", ready=False), healthy], now=0) is None
    assert checks.next_deadline() == 120
    assert checks.observe([pod("a", ready=False), healthy], now=100) is None
    fired = checks.observe([pod("a", ready=False), healthy], now=121)
    assert fired is not None and fired.rule == "health failing > 2m"


def test_recovering_pod_resets_the_health_clock() -> None:
    checks = triggers()
    checks.observe([pod("a", ready=False), pod("b")], now=0)
    checks.observe([pod("a"), pod("b")], now=60)
    assert checks.next_deadline() is None
    assert checks.observe([pod("a", ready=False), pod("b")], now=130) is None


def test_pod_state_reads_failures_and_last_termination() -> None:
    state = pod_state(
        {
            "metadata": {
                "name": "pulse-1",
                "ownerReferences": [{"uid": "rs", "controller": True}],
            },
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [
                    {
                        "restartCount": 2,
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                        "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
                    }
                ],
            },
        }
    )
    assert (state.failure, state.last_termination, state.restarts, state.owner_uid) == (
        "CrashLoopBackOff",
        "OOMKilled",
        2,
        "rs",
    )
    assert state.problem == "pulse-1: CrashLoopBackOff (last terminated: OOMKilled, 2 restarts)"


def test_restarts_before_a_pod_was_first_seen_are_a_baseline() -> None:
    checks = triggers()  # e.g. tracking picked up again after the bot restarted
    healthy = pod("b")
    assert checks.observe([pod("a", restarts=7), healthy], now=0) is None
    assert checks.observe([pod("a", restarts=9), healthy], now=10) is None
    fired = checks.observe([pod("a", restarts=11), healthy], now=20)
    assert fired is not None and "restarted 4 times" in fired.detail
