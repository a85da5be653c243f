"""Roles and policy: defaults, overrides, protected services, refusal reasons, bad config."""

from __future__ import annotations

from pathlib import Path

import pytest

from commands.access.policy import (
    ACTIONS,
    DEFAULT_RULES,
    AccessConfig,
    ApprovalRule,
    Policy,
)
from commands.core.config import ConfigError, load_config
from commands.core.models import Platform, User
from sandbox.demo_policy import demo_access

ALICE = User.parse("console:alice")
BOB = User.parse("console:bob")
CAROL = User.parse("console:carol")
ZED = User.parse("console:zed")
OPERATOR = User.parse("console:operator")


def demo_policy() -> Policy:
    return Policy(AccessConfig.model_validate(demo_access()), protected=["postgres"])


def load(tmp_path: Path, text: str) -> Policy:
    path = tmp_path / "holmbot.yaml"
    path.write_text(text)
    return Policy.from_config(load_config(path))


def config_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "holmbot.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return str(caught.value)


def test_every_parser_action_has_a_default_rule() -> None:
    assert set(DEFAULT_RULES) == set(ACTIONS)
    assert {"deploy", "backup.restore", "approve", "audit"} <= set(ACTIONS)


def test_defaults_reads_for_everyone_writes_for_deployers_audit_for_admins() -> None:
    policy = demo_policy()
    for action in ("health", "logs", "history", "status", "backup.list", "help", "approvals"):
        assert policy.decide(ZED, action, "nova").allowed, action
    for action in ("approve", "deny", "cancel"):
        assert policy.decide(ZED, action).allowed, action
    for action in ("deploy", "rollback", "restart", "scale"):
        assert policy.decide(ALICE, action, "nova").allowed
        assert policy.decide(BOB, action, "nova").allowed
        assert not policy.decide(CAROL, action, "nova").allowed
    assert policy.decide(ALICE, "backup.create").allowed
    assert policy.decide(BOB, "audit").allowed
    assert not policy.decide(ALICE, "audit").allowed


def test_default_policy_without_config_grants_no_roles() -> None:
    policy = Policy()
    assert policy.roles_of(OPERATOR) == frozenset()
    assert policy.decide(OPERATOR, "health").allowed
    decision = policy.decide(OPERATOR, "deploy", "nova")
    assert not decision.allowed
    assert (
        decision.reason == "deploy needs the role deployer or admin; console:operator has no role"
    )


def test_refusal_names_the_role_needed_and_held() -> None:
    decision = demo_policy().decide(CAROL, "deploy", "nova")
    assert not decision.allowed
    assert decision.approval is None
    assert decision.reason == "deploy needs the role deployer or admin; console:carol has viewer"
    assert decision.reply().title.startswith("not allowed: deploy needs")
    audit = demo_policy().decide(ALICE, "audit")
    assert audit.reason == "audit needs the role admin; console:alice has deployer"


def test_no_approval_for_ordinary_deploys() -> None:
    decision = demo_policy().decide(ALICE, "deploy", "nova")
    assert decision.allowed and decision.approval is None


def test_backup_restore_needs_one_admin_approval() -> None:
    decision = demo_policy().decide(ALICE, "backup.restore")
    assert decision.allowed
    assert decision.approval == ApprovalRule(approvals=1, approvers=("admin",), expires_after=3600)
    assert decision.approval.describe() == "1 approval from admin"


def test_protected_service_needs_admin_approval_for_mutations_only() -> None:
    policy = demo_policy()
    for action in ("deploy", "restart", "scale", "rollback"):
        decision = policy.decide(ALICE, action, "postgres")
        assert decision.allowed and decision.approval is not None, action
        assert decision.approval.approvers == ("admin",)
        # admins need another admin's approval too
        assert policy.decide(BOB, action, "postgres").approval is not None
    assert policy.decide(ALICE, "logs", "postgres").approval is None
    assert policy.decide(ALICE, "deploy", "nova").approval is None
    refused = policy.decide(CAROL, "deploy", "postgres")
    assert refused.reason == (
        "deploy on postgres needs the role deployer or admin; console:carol has viewer"
    )


def test_protection_never_weakens_the_actions_own_approval_rule(tmp_path: Path) -> None:
    policy = load(
        tmp_path,
        """
protected_services: [postgres]
access:
  roles:
    admin: {users: [console:bob, console:dave]}
    deployer: {users: [console:alice]}
  protected_approval: {approvals: 1, approvers: [admin], expires_after: 1h}
  actions:
    deploy:
      roles: [deployer, admin]
      approval: {approvals: 2, approvers: [deployer, admin], expires_after: 10m}
""",
    )
    # everywhere a deploy needs two approvals; on postgres, two admins' within the 10 minutes
    assert policy.decide(ALICE, "deploy", "nova").approval == ApprovalRule(
        approvals=2, approvers=("deployer", "admin"), expires_after=600
    )
    assert policy.decide(ALICE, "deploy", "postgres").approval == ApprovalRule(
        approvals=2, approvers=("admin",), expires_after=600
    )
    assert policy.decide(ALICE, "restart", "postgres").approval == ApprovalRule(
        approvals=1, approvers=("admin",), expires_after=3600
    )


def test_protected_services_can_be_overridden(tmp_path: Path) -> None:
    policy = load(
        tmp_path,
        """
protected_services: [postgres, vault]
access:
  roles:
    admin: {users: [console:bob, console:dave]}
    deployer: {users: [console:alice]}
    dba: {users: [console:erin]}
  protected_approval: {approvals: 2, approvers: [admin], expires_after: 10m}
  services:
    postgres:
      roles: [dba, admin]
      approval: {approvals: 1, approvers: [dba], expires_after: 30m}
    vault:
      actions: [restart]
      approval: null
    gateway:
      actions: [logs, deploy]
      roles: [admin]
""",
    )
    erin = User.parse("console:erin")
    postgres = policy.decide(erin, "deploy", "postgres")
    assert postgres.allowed
    assert postgres.approval == ApprovalRule(approvals=1, approvers=("dba",), expires_after=1800)
    assert not policy.decide(ALICE, "deploy", "postgres").allowed
    assert policy.decide(ALICE, "logs", "postgres").allowed  # reads are not covered by default
    # vault: restart needs nothing; other mutations keep the protected rule (2 admins, 10m)
    assert policy.decide(ALICE, "restart", "vault").approval is None
    assert policy.decide(ALICE, "deploy", "vault").approval == ApprovalRule(
        approvals=2, approvers=("admin",), expires_after=600
    )
    # gateway: listed actions only, reads included
    assert policy.decide(ALICE, "logs", "gateway").reason == (
        "logs on gateway needs the role admin; console:alice has deployer"
    )
    assert policy.decide(ALICE, "restart", "gateway").allowed


def test_action_rules_replace_only_the_fields_they_set(tmp_path: Path) -> None:
    policy = load(
        tmp_path,
        """
access:
  roles:
    admin: {users: [console:bob]}
    deployer: {users: [console:alice]}
    sre: {users: [console:sam]}
  actions:
    deploy: {approval: {approvals: 2, approvers: [admin, sre], expires_after: 2h}}
    backup.restore: {approval: null}
    logs: {roles: [sre, admin, deployer]}
""",
    )
    deploy = policy.decide(ALICE, "deploy", "nova")
    assert deploy.allowed  # roles kept from the default
    assert deploy.approval == ApprovalRule(
        approvals=2, approvers=("admin", "sre"), expires_after=7200
    )
    restore = policy.decide(ALICE, "backup.restore")
    assert restore.allowed and restore.approval is None
    logs = policy.decide(ZED, "logs", "nova")
    assert (
        logs.reason == "logs needs one of the roles sre, admin or deployer; console:zed has no role"
    )


def test_roles_through_groups_platform_wildcards_and_everyone(tmp_path: Path) -> None:
    policy = load(
        tmp_path,
        """
access:
  roles:
    admin: {slack_groups: [S0614TZR7], discord_roles: ["80351110224678912"]}
    deployer: {users: ["console:*", slack:U024BE7LH]}
    viewer: {users: ["*"]}
""",
    )
    slack_admin = User.parse("slack:U1", groups=("S0614TZR7",))
    discord_admin = User.parse("discord:42", groups=("80351110224678912",))
    # a group id only counts on its own platform
    discord_lookalike = User.parse("discord:43", groups=("S0614TZR7",))
    assert policy.roles_of(slack_admin) == {"admin", "viewer"}
    assert policy.roles_of(discord_admin) == {"admin", "viewer"}
    assert policy.roles_of(discord_lookalike) == {"viewer"}
    assert policy.roles_of(ZED) == {"deployer", "viewer"}
    assert policy.roles_of(User.parse("slack:U024BE7LH")) == {"deployer", "viewer"}
    assert policy.members(["deployer"]) == ["slack:U024BE7LH"]


def test_can_approve_needs_an_approver_role() -> None:
    policy = demo_policy()
    rule = ApprovalRule()
    assert policy.can_approve(BOB, rule)
    assert not policy.can_approve(ALICE, rule)
    assert policy.can_approve(ALICE, ApprovalRule(approvers=("deployer", "admin")))
    assert policy.can_approve(ZED, ApprovalRule(approvers=("*",)))


def test_channels_are_restricted_per_platform(tmp_path: Path) -> None:
    policy = load(
        tmp_path,
        """
access:
  channels:
    slack: [C0DEPLOYS, C0OPS]
    discord: ["*"]
""",
    )
    assert policy.channel_allowed(Platform.SLACK, "C0DEPLOYS")
    assert not policy.channel_allowed("slack", "C0RANDOM")
    assert policy.channel_allowed("discord", "123")
    assert policy.channel_allowed("console", "anything")


def test_demo_policy_loads_from_yaml(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "holmbot.yaml"
    path.write_text(yaml.safe_dump({"protected_services": ["postgres"], "access": demo_access()}))
    policy = Policy.from_config(load_config(path))
    assert policy.roles_of(OPERATOR) == {"admin"}
    assert policy.roles_of(User.parse("console:dave")) == {"admin"}
    assert policy.decide(ALICE, "deploy", "postgres").approval is not None


def test_durations_in_config(tmp_path: Path) -> None:
    policy = load(
        tmp_path,
        """
access:
  actions:
    deploy: {approval: {expires_after: 1h30m}}
    scale: {approval: {expires_after: 90}}
""",
    )
    assert policy.rule("deploy")[1] == ApprovalRule(expires_after=5400)
    assert policy.rule("scale")[1] == ApprovalRule(expires_after=90)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "access: {actions: {deploy: {roles: [deployr]}}}",
            "access: actions.deploy.roles: unknown role 'deployr' (did you mean deployer?) "
            "(roles: admin, deployer, viewer)",
        ),
        (
            "access: {services: {postgres: {approval: {approvers: [dba]}}}}",
            "services.postgres.approval.approvers: unknown role 'dba'",
        ),
        (
            "access: {actions: {deplyo: {roles: [admin]}}}",
            "access.actions: unknown action 'deplyo' (did you mean deploy?)",
        ),
        (
            "access: {actions: {backup: {roles: [admin]}}}",
            "unknown action 'backup'",
        ),
        (
            "access: {services: {postgres: {actions: [restrat]}}}",
            "unknown action 'restrat' (did you mean restart?)",
        ),
        (
            "access: {actions: {deploy: {approval: {expires_after: soon}}}}",
            "access.actions.deploy.approval.expires_after: 'soon' is not a duration",
        ),
        (
            "access: {actions: {deploy: {approval: {expires_after: -5}}}}",
            "access.actions.deploy.approval.expires_after: Input should be greater than 0",
        ),
        (
            "access: {actions: {deploy: {approval: {approvals: 0}}}}",
            "access.actions.deploy.approval.approvals: Input should be greater than or equal to 1",
        ),
        (
            "access: {roles: {admin: {users: [bob]}}}",
            "access.roles.admin.users: 'bob': users are written PLATFORM:ID",
        ),
        (
            "access: {roles: {Admin: {}}}",
            "access.roles: role name 'Admin' must be lowercase",
        ),
        (
            "access: {channels: {irc: ['#ops']}}",
            "access.channels.irc.[key]: Input should be 'slack', 'discord' or 'console'",
        ),
        (
            "access: {services: {Postgres: {}}}",
            "access.services: 'Postgres' is not a valid service name",
        ),
        (
            "access: {actions: {deploy: {rolls: [admin]}}}",
            "access.actions.deploy.rolls: unknown setting",
        ),
    ],
)
def test_bad_config_is_reported_clearly(tmp_path: Path, text: str, expected: str) -> None:
    message = config_error(tmp_path, text)
    assert expected in message
    assert str(tmp_path / "holmbot.yaml") in message


def test_a_role_defined_in_config_can_be_used_in_rules(tmp_path: Path) -> None:
    policy = load(
        tmp_path,
        "access: {roles: {dba: {users: [console:erin]}}, actions: {audit: {roles: [dba]}}}",
    )
    assert policy.decide(User.parse("console:erin"), "audit").allowed


def test_unknown_action_in_decide_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown action"):
        Policy().decide(ALICE, "launch", None)
