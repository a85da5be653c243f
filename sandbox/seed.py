"""What the sandbox's HolmOS looks like when it starts: nodes, services, images, behaviours.

Failures come from the world, not from switches the bot can see: an image tag is marked
here as crashing, leaking memory or unhealthy, and the controller acts it out when a pod
runs that image; a tag missing from the registry fails to pull.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from sandbox.health import Behaviour as Endpoint

NAMESPACE = "holm"
REGISTRY_HOST = "10.110.67.87:5000"
STORAGE_NODE = "openmediavault"
NODE_NAMES: tuple[str, ...] = (*(f"rpi{index}" for index in range(1, 13)), STORAGE_NODE)


class ImageBehaviour(StrEnum):
    """How a container running an image behaves."""

    OK = "ok"
    CRASH = "crash"  # exits with code 1 a few seconds after start: CrashLoopBackOff
    OOM = "oom"  # memory grows until the limit: OOMKilled (exit 137), restarts
    UNHEALTHY = "unhealthy"  # runs, but its /health answers 503


@dataclass(frozen=True)
class ServiceSeed:
    """One HolmOS service: its Deployment's shape, its registry tags and its behaviours."""

    name: str
    replicas: int
    history: tuple[str, ...]  # tags deployed in order, one revision each; the last is current
    extra_tags: tuple[str, ...] = ()  # pushed to the registry, never deployed yet
    port: int = 8080
    node_port: int | None = None
    memory_limit: str = "256Mi"
    endpoint: Endpoint = Endpoint.OK
    broken_tags: dict[str, ImageBehaviour] = field(default_factory=dict)
    sidecar: str | None = None  # a second container's name, e.g. a log shipper

    @property
    def tags(self) -> tuple[str, ...]:
        """Every tag the registry holds for this service."""
        return tuple(dict.fromkeys((*self.history, *self.extra_tags, "latest")))

    def image(self, tag: str) -> str:
        return f"{REGISTRY_HOST}/{self.name}:{tag}"

    def behaviour(self, tag: str) -> ImageBehaviour:
        return self.broken_tags.get(tag, ImageBehaviour.OK)


SERVICES: tuple[ServiceSeed, ...] = (
    ServiceSeed("holmos-shell", 2, ("v1.2.0", "v1.3.0"), ("v1.4.0",), node_port=30000),
    ServiceSeed("claude-pod", 1, ("v0.9.0", "v1.0.0"), ("v1.1.0",), node_port=30001),
    ServiceSeed(
        "nova",
        2,
        ("v1", "v1.1"),
        ("v2", "v2-broken", "v3"),
        node_port=30004,
        broken_tags={"v2-broken": ImageBehaviour.CRASH},
    ),
    ServiceSeed(
        "pulse",
        1,
        ("v1.0", "v1.1", "v1.2"),
        ("v1.3-leak",),
        node_port=30006,
        broken_tags={"v1.3-leak": ImageBehaviour.OOM},
    ),
    ServiceSeed("gateway", 3, ("v2.0.0", "v2.1.0"), ("v2.2.0",), node_port=30008, sidecar="envoy"),
    ServiceSeed(
        "scribe",
        1,
        ("v0.8", "v0.9"),
        ("v1.0",),
        node_port=30860,
        memory_limit="128Mi",
        broken_tags={"v0.9": ImageBehaviour.OOM},
    ),
    ServiceSeed("backup-dashboard", 1, ("v1.0.0", "v1.0.1"), node_port=30850),
    ServiceSeed(
        "cicd-controller",
        1,
        ("v0.3.0", "v0.4.0"),
        ("v0.5.0",),
        node_port=30020,
        broken_tags={"v0.5.0": ImageBehaviour.UNHEALTHY},
    ),
    ServiceSeed("registry-ui", 1, ("v1.1", "v1.2"), node_port=31750, endpoint=Endpoint.FAILING),
    ServiceSeed("metrics-dashboard", 1, ("v2.3", "v2.4"), node_port=30950, endpoint=Endpoint.SLOW),
    ServiceSeed("test-dashboard", 1, ("v0.1", "v0.2"), node_port=30900, endpoint=Endpoint.HANG),
    ServiceSeed("postgres", 1, ("15.4", "15.6"), ("16.2",), port=5432, memory_limit="512Mi"),
)


def service(name: str) -> ServiceSeed | None:
    """The seeded service called `name`, if any."""
    return next((seed for seed in SERVICES if seed.name == name), None)
