"""deploy/ as kubectl renders it, and the Role's rules read the way RBAC reads them."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from sandbox.recorder import ApiRequest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BUILD = DEPLOY / "build"
Obj = dict[str, Any]


@cache
def _render(directory: Path) -> tuple[str, ...]:
    result = subprocess.run(
        ["kubectl", "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": "/tmp"},
    )
    assert result.returncode == 0, result.stderr
    return tuple(yaml.safe_dump(doc) for doc in yaml.safe_load_all(result.stdout) if doc)


def render(directory: Path = DEPLOY) -> list[Obj]:
    """`kubectl kustomize DIRECTORY`'s objects (fresh copies: tests may change them)."""
    return [yaml.safe_load(text) for text in _render(directory)]


def rendered(kind: str, directory: Path = DEPLOY) -> Obj:
    """The one rendered object of `kind`."""
    found = [obj for obj in render(directory) if obj["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} objects in {directory}"
    return found[0]


@dataclass(frozen=True)
class Grant:
    """One (API group, resource[/subresource], verb) a Role allows."""

    group: str
    resource: str
    verb: str

    @classmethod
    def of(cls, request: ApiRequest) -> Grant:
        resource = (
            f"{request.resource}/{request.subresource}"
            if request.subresource
            else (request.resource)
        )
        return cls(request.group, resource, request.verb)


def grants(role: Obj) -> set[Grant]:
    """Every grant of a Role's rules; wildcards and resourceNames are refused outright."""
    found: set[Grant] = set()
    for rule in role["rules"]:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule, rule
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], f"wildcard in {field}: {rule}"
        found |= {
            Grant(group, resource, verb)
            for group in rule["apiGroups"]
            for resource in rule["resources"]
            for verb in rule["verbs"]
        }
    return found
