"""The sandbox's demo roles and approval rules, written into the `holmbot.yaml` it generates."""

from __future__ import annotations

from typing import Any


def demo_access() -> dict[str, Any]:
    """The sandbox's demo policy as plain data, for writing into a generated `holmbot.yaml`.

    Goes with `protected_services: [postgres]`; backup restore needs one admin approval by
    default, and so does any mutating action on postgres.
    """
    return {
        "roles": {
            "admin": {"users": ["console:operator", "console:bob", "console:dave"]},
            "deployer": {"users": ["console:alice"]},
            "viewer": {"users": ["console:carol"]},
        },
        "actions": {
            "backup.restore": {
                "roles": ["deployer", "admin"],
                "approval": {"approvals": 1, "approvers": ["admin"], "expires_after": "1h"},
            },
        },
        "protected_approval": {"approvals": 1, "approvers": ["admin"], "expires_after": "1h"},
    }
