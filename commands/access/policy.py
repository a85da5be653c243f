"""Who may do what: roles from config, a rule per action, per-service overrides, approval rules.

The `access` config section grants roles to users (`PLATFORM:ID`, `PLATFORM:*` or `*`), to Slack
user groups and to Discord guild roles; optionally limits the channels the bot answers in per
platform; and sets a rule per action (the parser's names: `deploy`, `backup.restore`...): which
roles may run it and whether it needs approval. Service overrides replace the rule for the
mutating actions on one service (or for the actions they list). Protected services (the
top-level `protected_services`) need `protected_approval` on top of the action's own approval
rule (never less than either) unless a service override says otherwise. Whatever the config
leaves out comes from `DEFAULT_RULES`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from commands.core.models import Platform, Reply, Tone, User
from commands.core.parser import SPECS, did_you_mean, duration_seconds, service_name

if TYPE_CHECKING:
    from commands.core.config import Config

EVERYONE = "*"
ADMIN = "admin"
BUILTIN_ROLES: tuple[str, ...] = ("viewer", "deployer", ADMIN)
ACTIONS: tuple[str, ...] = tuple(
    dict.fromkeys(spec.model.model_fields["action"].default for spec in SPECS)
)
SERVICE_MUTATIONS: tuple[str, ...] = ("deploy", "restart", "scale", "rollback")
MUTATING: frozenset[str] = frozenset({*SERVICE_MUTATIONS, "backup.create", "backup.restore"})
DEFAULT_EXPIRY_SECONDS = 3600

_ROLE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration(value: Any) -> Any:
    """`"30m"`, `"1h30m"` or a number of seconds."""
    if isinstance(value, str):
        return duration_seconds(value.strip())
    return value


Duration = Annotated[int, BeforeValidator(_duration), Field(gt=0)]


class ApprovalRule(_Model):
    """A request needs `approvals` distinct approvers holding one of `approvers`, in time."""

    approvals: int = Field(default=1, ge=1, le=10)
    approvers: tuple[str, ...] = Field(default=(ADMIN,), min_length=1)
    expires_after: Duration = DEFAULT_EXPIRY_SECONDS  # seconds; config takes `30m`, `2h`...

    def and_(self, other: ApprovalRule) -> ApprovalRule:
        """Both rules at once: the most approvals, from roles both accept (`other`'s if they
        share none), by the sooner expiry."""
        shared = tuple(role for role in other.approvers if role in self.approvers)
        return ApprovalRule(
            approvals=max(self.approvals, other.approvals),
            approvers=shared or other.approvers,
            expires_after=min(self.expires_after, other.expires_after),
        )

    def describe(self) -> str:
        """`1 approval from admin`, `2 approvals from deployer or admin`."""
        count = f"{self.approvals} approval{'s' if self.approvals > 1 else ''}"
        return f"{count} from {roles_text(self.approvers)}"


class RoleGrant(_Model):
    """Who holds one role."""

    users: tuple[str, ...] = ()  # `slack:U024BE7LH`, `console:*` (every console user), `*`
    slack_groups: tuple[str, ...] = ()  # Slack user group ids, e.g. S0614TZR7
    discord_roles: tuple[str, ...] = ()  # Discord guild role ids

    @field_validator("users")
    @classmethod
    def _check_users(cls, users: tuple[str, ...]) -> tuple[str, ...]:
        for user in users:
            if user == EVERYONE or (user.endswith(":*") and user[:-2] in set(Platform)):
                continue
            try:
                User.parse(user)
            except ValueError:
                raise ValueError(
                    f"{user!r}: users are written PLATFORM:ID (slack:U024BE7LH, console:alice), "
                    "PLATFORM:* for everyone on a platform, or * for everyone"
                ) from None
        return users

    def holds(self, user: User) -> bool:
        if {EVERYONE, f"{user.platform}:*", user.key} & set(self.users):
            return True
        groups = {
            Platform.SLACK: self.slack_groups,
            Platform.DISCORD: self.discord_roles,
        }.get(user.platform, ())
        return not set(groups).isdisjoint(user.groups)


class ActionRule(_Model):
    """One action's rule. An omitted field keeps the default; `approval: null` removes it."""

    roles: tuple[str, ...] | None = Field(default=None, min_length=1)  # `*`: everyone
    approval: ApprovalRule | None = None


class ServiceRule(ActionRule):
    """A rule for actions on one service; omitted fields keep what applies without it."""

    actions: tuple[str, ...] | None = Field(default=None, min_length=1)  # None: SERVICE_MUTATIONS

    @field_validator("actions")
    @classmethod
    def _known_actions(cls, actions: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for action in actions or ():
            _check_action(action)
        return actions

    def covers(self, action: str) -> bool:
        return action in (self.actions or SERVICE_MUTATIONS)


class AccessConfig(_Model):
    """The `access` config section: roles, channels and policy."""

    roles: dict[str, RoleGrant] = Field(default_factory=dict)
    channels: dict[Platform, tuple[str, ...]] = Field(default_factory=dict)  # absent: any channel
    actions: dict[str, ActionRule] = Field(default_factory=dict)
    services: dict[str, ServiceRule] = Field(default_factory=dict)
    protected_approval: ApprovalRule = ApprovalRule()  # for `protected_services`
    # one person's accounts on several platforms: `alice: [slack:U024BE7LH, discord:8012...]`;
    # self-approval and distinct approvers count people, not accounts
    people: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @field_validator("people")
    @classmethod
    def _one_person_per_account(
        cls, people: dict[str, tuple[str, ...]]
    ) -> dict[str, tuple[str, ...]]:
        owner: dict[str, str] = {}
        for person, accounts in people.items():
            for account in accounts:
                User.parse(account)  # PLATFORM:ID, or a ValueError naming it
                if account.endswith("*"):
                    raise ValueError(f"people: {person}: {account!r} is not one account")
                if account in owner and owner[account] != person:
                    raise ValueError(
                        f"people: {account} is listed for {owner[account]} and {person}"
                    )
                owner[account] = person
        return people

    @field_validator("roles")
    @classmethod
    def _role_names(cls, roles: dict[str, RoleGrant]) -> dict[str, RoleGrant]:
        for name in roles:
            if not _ROLE_NAME.fullmatch(name):
                raise ValueError(
                    f"role name {name!r} must be lowercase letters, digits, '-' or '_', "
                    "starting with a letter"
                )
        return roles

    @field_validator("actions")
    @classmethod
    def _action_names(cls, actions: dict[str, ActionRule]) -> dict[str, ActionRule]:
        for action in actions:
            _check_action(action)
        return actions

    @field_validator("services")
    @classmethod
    def _service_names(cls, services: dict[str, ServiceRule]) -> dict[str, ServiceRule]:
        for service in services:
            service_name(service)
        return services

    @model_validator(mode="after")
    def _known_roles(self) -> AccessConfig:
        known = set(BUILTIN_ROLES) | set(self.roles)
        problems = [
            f"{where}: unknown role {role!r}{did_you_mean(role, known, n=1)} "
            f"(roles: {', '.join(sorted(known))})"
            for where, roles in self._role_references()
            for role in roles
            if role != EVERYONE and role not in known
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _role_references(self) -> Iterable[tuple[str, tuple[str, ...]]]:
        yield "protected_approval.approvers", self.protected_approval.approvers
        for section, rules in (("actions", self.actions), ("services", self.services)):
            for name, rule in rules.items():
                if rule.roles:
                    yield f"{section}.{name}.roles", rule.roles
                if rule.approval:
                    yield f"{section}.{name}.approval.approvers", rule.approval.approvers


def _check_action(action: str) -> None:
    if action not in ACTIONS:
        raise ValueError(
            f"unknown action {action!r}{did_you_mean(action, ACTIONS, n=1)}; "
            f"actions: {', '.join(ACTIONS)}"
        )


def roles_text(roles: Iterable[str]) -> str:
    """`admin`, `deployer or admin`, `a, b or c`; `anyone` when `*` is among them."""
    roles = list(roles)
    if EVERYONE in roles:
        return "anyone"
    return roles[0] if len(roles) == 1 else ", ".join(roles[:-1]) + " or " + roles[-1]


_READ = (EVERYONE,)
_DEPLOYERS = ("deployer", ADMIN)
DEFAULT_RULES: dict[str, ActionRule] = {
    **{a: ActionRule(roles=_READ) for a in ACTIONS},  # reads, help, approvals, votes, cancel
    **{a: ActionRule(roles=_DEPLOYERS) for a in ("deploy", "rollback", "restart", "scale")},
    "backup.create": ActionRule(roles=_DEPLOYERS),
    "backup.restore": ActionRule(roles=_DEPLOYERS, approval=ApprovalRule()),
    "audit": ActionRule(roles=(ADMIN,)),
}
"""The rule of every action the config does not mention."""


class Decision(_Model):
    """Whether `user` may run `action` (on `service`), and the approval it needs if so."""

    action: str
    service: str | None = None
    allowed: bool
    roles: tuple[str, ...]  # who may run it
    approval: ApprovalRule | None = None
    reason: str | None = None  # for refusals: which role it needs, which the user has

    def reply(self) -> Reply:
        """The refusal as a reply (nothing runs)."""
        return Reply(title=f"not allowed: {self.reason}", tone=Tone.ERROR, private=True)


class Policy:
    """Decisions over one `AccessConfig` and the protected services."""

    def __init__(self, access: AccessConfig | None = None, protected: Iterable[str] = ()) -> None:
        self.access = access or AccessConfig()
        self.protected = frozenset(protected)

    @classmethod
    def from_config(cls, config: Config) -> Policy:
        access = getattr(config, "access", None)
        return cls(access, config.protected_services)

    def person(self, user_key: str) -> str:
        """Who `user_key` (`PLATFORM:ID`) is: the person it is linked to in `people`, or itself."""
        for person, accounts in self.access.people.items():
            if user_key in accounts:
                return f"person:{person}"
        return user_key

    def groups_of_interest(self, platform: Platform) -> frozenset[str]:
        """The Slack user groups or Discord guild roles the policy grants roles to: the only
        ones an adapter needs to look up (and cache) for a user."""
        return frozenset(
            group
            for grant in self.access.roles.values()
            for group in (grant.slack_groups if platform is Platform.SLACK else ())
            + (grant.discord_roles if platform is Platform.DISCORD else ())
        )

    def roles_of(self, user: User) -> frozenset[str]:
        return frozenset(name for name, grant in self.access.roles.items() if grant.holds(user))

    def members(self, roles: Iterable[str]) -> list[str]:
        """The users granted any of `roles` by name (not through groups), sorted."""
        wanted = set(roles)
        return sorted(
            {
                user
                for name, grant in self.access.roles.items()
                if name in wanted
                for user in grant.users
                if not user.endswith("*")
            }
        )

    def rule(
        self, action: str, service: str | None = None
    ) -> tuple[tuple[str, ...], ApprovalRule | None]:
        """The roles that may run `action` on `service`, and its approval rule."""
        _check_action(action)
        base = DEFAULT_RULES[action]
        roles, approval = base.roles or _READ, base.approval
        configured = self.access.actions.get(action)
        if configured is not None:
            roles, approval = _apply(configured, roles, approval)
        if service is None:
            return roles, approval
        if service in self.protected and action in SERVICE_MUTATIONS:
            protected = self.access.protected_approval
            approval = protected if approval is None else approval.and_(protected)
        override = self.access.services.get(service)
        if override is not None and override.covers(action):
            roles, approval = _apply(override, roles, approval)
        return roles, approval

    def decide(self, user: User, action: str, service: str | None = None) -> Decision:
        roles, approval = self.rule(action, service)
        held = self.roles_of(user)
        if EVERYONE in roles or held & set(roles):
            return Decision(
                action=action, service=service, allowed=True, roles=roles, approval=approval
            )
        what = f"{action} on {service}" if service and service in self._special() else action
        needs = (
            f"the role {roles_text(roles)}"
            if len(roles) <= 2
            else f"one of the roles {roles_text(roles)}"
        )
        has = " and ".join(sorted(held)) if held else "no role"
        return Decision(
            action=action,
            service=service,
            allowed=False,
            roles=roles,
            reason=f"{what} needs {needs}; {user.key} has {has}",
        )

    def channel_allowed(self, platform: Platform | str, channel: str) -> bool:
        allowed = self.access.channels.get(Platform(platform))
        return allowed is None or EVERYONE in allowed or channel in allowed

    def can_approve(self, user: User, rule: ApprovalRule) -> bool:
        """Whether `user` holds an approver role (the requester check is the engine's)."""
        return EVERYONE in rule.approvers or not self.roles_of(user).isdisjoint(rule.approvers)

    def _special(self) -> set[str]:
        return set(self.access.services) | self.protected


def _apply(
    rule: ActionRule, roles: tuple[str, ...], approval: ApprovalRule | None
) -> tuple[tuple[str, ...], ApprovalRule | None]:
    """`rule` laid over (roles, approval): only the fields it sets replace."""
    if rule.roles is not None:
        roles = rule.roles
    if "approval" in rule.model_fields_set:
        approval = rule.approval
    return roles, approval
