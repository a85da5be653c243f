"""The Role in deploy/ grants exactly what the bot asks the API for: nothing missing, nothing spare.

Real commands go through the command layer (as the console types them) against the running
sandbox, which records every request as RBAC would authorize it; the Role rendered from deploy/
must grant each one and grant nothing that was never asked.
"""

from __future__ import annotations

from commands.core.config import Config, load_config
from sandbox.cluster import Sandbox
from sandbox.recorder import ApiRequest
from tests.console.driver import Console, open_console, operation_id, with_changes
from tests.deploy.manifests import Grant, grants, rendered

NODES = ApiRequest("list", "", "nodes")  # the /health overview's nodes: cluster-wide


def bot_config(sandbox: Sandbox, **health: object) -> Config:
    return with_changes(
        load_config(sandbox.bot_config_path),
        health={"probe_timeout_seconds": 1.0, **health},
        rollout={"timeout_seconds": 60.0, "health_failure_seconds": 5.0, "verify_seconds": 0},
    )


async def tracked(console: Console, line: str, done: str) -> None:
    """Type a command that starts an operation; wait until it has ended as `done`."""
    reply = await console.run(line)
    op = operation_id(reply)
    await console.wait()
    assert console.final(op).startswith(f"[{op}] ✔ {done}"), console.text


async def use_every_command(sandbox: Sandbox) -> None:
    async with open_console(bot_config(sandbox)) as console:
        await tracked(console, "/deploy nova v2", "deploy nova:v2 done")
        assert (await console.run("/logs nova")).startswith("nova logs: ")
        assert (await console.run("/status nova")).startswith("✔ ")
        assert (await console.run("/health nova")).startswith("✔ nova: healthy")
        assert (await console.run("/health")).splitlines()[0].endswith("problems")
        assert "REVISION" in await console.run("/rollback nova history")
        await tracked(console, "/rollback nova", "rollback nova")
        await tracked(console, "/restart nova", "restart nova")
        await tracked(console, "/scale nova 3", "scale nova to 3 done")
    # without an aggregator the overview probes each service found through its Service
    async with open_console(bot_config(sandbox, aggregator_url=None)) as console:
        assert "/health probes" in await console.run("/health")


async def test_the_role_grants_every_request_the_bot_makes_and_nothing_more(
    sandbox: Sandbox,
) -> None:
    await use_every_command(sandbox)
    requests = set(sandbox.api_requests)
    namespaced = {request for request in requests if request.namespace is not None}
    assert requests - namespaced == {NODES}  # no Role can grant it; the overview says so
    assert {request.namespace for request in namespaced} == {"holm"}
    role = rendered("Role")
    assert role["metadata"]["namespace"] == "holm"
    allowed = grants(role)
    used = {Grant.of(request) for request in namespaced}
    assert used - allowed == set(), "the Role misses requests the bot makes"
    assert allowed - used == set(), "the Role grants requests the bot never makes"
    assert not any(grant.resource == "secrets" for grant in allowed)
    assert not any(grant.verb in ("create", "delete", "deletecollection") for grant in allowed)
