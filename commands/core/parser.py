"""One parser for every platform: command text in, a typed command (or a `ParseError`) out.

`/deploy nova v2`, `!deploy nova v2` and `deploy nova v2` parse the same. The table `SPECS` is
the single source of every command's usage line and description: parsing, error messages,
`help` and `command_text` all read it.
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from commands.core.models import Reply, ReplyField, Tone

MAX_REPLICAS = 50
MAX_TAIL = 5000
DEFAULT_TAIL = 100
DEFAULT_AUDIT = 20
MAX_AUDIT = 200
MAX_GREP = 200
PREFIXES = "/!"
MAX_COMMAND_CHARS = 2000  # longer than any command; a chat message holds 2000 (Discord)

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_BACKUP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
_BACKUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_SMART_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})


class ParseError(Exception):
    """Input that is not a valid command: a message for the user and the usage that applies."""

    def __init__(self, message: str, usage: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.usage = tuple(usage)

    def reply(self) -> Reply:
        """What the user sees: the problem, then the usage lines."""
        lines = [f"usage: {line}" for line in self.usage]
        return Reply(title=self.message, tone=Tone.ERROR, lines=lines)


# --- commands -----------------------------------------------------------------------------


class BaseCommand(BaseModel):
    """A parsed command: `action` names it for policy, `service` is the service it targets."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: str
    service: str | None = None


class DeployCommand(BaseCommand):
    action: Literal["deploy"] = "deploy"
    service: str
    tag: str | None = None
    container: str | None = None

    @model_validator(mode="after")
    def _container_needs_a_tag(self) -> DeployCommand:
        if self.container is not None and self.tag is None:
            raise ValueError("--container needs a TAG (without one, deploy restarts every pod)")
        return self


class RestartCommand(BaseCommand):
    action: Literal["restart"] = "restart"
    service: str


class ScaleCommand(BaseCommand):
    action: Literal["scale"] = "scale"
    service: str
    replicas: int


class StatusCommand(BaseCommand):
    action: Literal["status"] = "status"
    service: str


class RollbackCommand(BaseCommand):
    action: Literal["rollback"] = "rollback"
    service: str
    revision: int | None = None  # None: the previous revision


class HistoryCommand(BaseCommand):
    action: Literal["history"] = "history"
    service: str


class LogsCommand(BaseCommand):
    action: Literal["logs"] = "logs"
    service: str
    tail: int = DEFAULT_TAIL
    previous: bool = False
    container: str | None = None
    since_seconds: int | None = None
    grep: str | None = None


class BackupCreateCommand(BaseCommand):
    action: Literal["backup.create"] = "backup.create"
    name: str | None = None


class BackupListCommand(BaseCommand):
    action: Literal["backup.list"] = "backup.list"


class BackupRestoreCommand(BaseCommand):
    action: Literal["backup.restore"] = "backup.restore"
    backup_id: str


class HealthCommand(BaseCommand):
    action: Literal["health"] = "health"


class HelpCommand(BaseCommand):
    action: Literal["help"] = "help"
    topic: str | None = None  # a command name from SPECS, e.g. "deploy" or "backup"


class ApproveCommand(BaseCommand):
    action: Literal["approve"] = "approve"
    request_id: str


class DenyCommand(BaseCommand):
    action: Literal["deny"] = "deny"
    request_id: str


class WithdrawCommand(BaseCommand):
    action: Literal["withdraw"] = "withdraw"
    request_id: str


class ApprovalsCommand(BaseCommand):
    action: Literal["approvals"] = "approvals"


class CancelCommand(BaseCommand):
    action: Literal["cancel"] = "cancel"
    request_id: str


class AuditCommand(BaseCommand):
    action: Literal["audit"] = "audit"
    limit: int = DEFAULT_AUDIT


Command = Annotated[
    DeployCommand
    | RestartCommand
    | ScaleCommand
    | StatusCommand
    | RollbackCommand
    | HistoryCommand
    | LogsCommand
    | BackupCreateCommand
    | BackupListCommand
    | BackupRestoreCommand
    | HealthCommand
    | HelpCommand
    | ApproveCommand
    | DenyCommand
    | WithdrawCommand
    | ApprovalsCommand
    | CancelCommand
    | AuditCommand,
    Field(discriminator="action"),
]
COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)
"""Validates or serializes any command, e.g. to keep a pending approval in storage."""


# --- argument converters: str -> value, ValueError with a user-facing message -------------


def service_name(value: str) -> str:
    """A Kubernetes DNS-1123 label, as Deployment and Service names are."""
    if not DNS1123_LABEL.fullmatch(value):
        hint = f" (did you mean {value.lower()}?)" if DNS1123_LABEL.fullmatch(value.lower()) else ""
        raise ValueError(
            f"{value!r} is not a valid service name{hint}: lowercase letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters"
        )
    return value


def container_name(value: str) -> str:
    if not DNS1123_LABEL.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid container name")
    return value


def image_tag(value: str) -> str:
    """A registry tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`."""
    if not _TAG.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid image tag: letters, digits, '_', '.' and '-', "
            "not starting with '.' or '-', at most 128 characters"
        )
    return value


def _bounded_int(what: str, low: int, high: int, hint: str = "") -> Callable[[str], int]:
    def convert(value: str) -> int:
        if not re.fullmatch(r"\d+", value) or not low <= int(value) <= high:
            raise ValueError(
                f"{what} must be a whole number from {low} to {high}{hint}, got {value!r}"
            )
        return int(value)

    return convert


def duration_seconds(value: str) -> int:
    """`30s`, `5m`, `2h`, `1h30m`, `1d` -> seconds (a bare number means seconds)."""
    if re.fullmatch(r"\d+", value):
        value += "s"
    match = _DURATION.fullmatch(value)
    if not value or match is None:
        raise ValueError(f"{value!r} is not a duration; write it like 30s, 5m, 2h or 1h30m")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total <= 0:
        raise ValueError(f"duration must be longer than zero, got {value!r}")
    return total


def format_duration(seconds: int) -> str:
    """Seconds -> the shortest `1h30m`-style duration."""
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def _pattern(what: str, regex: re.Pattern[str]) -> Callable[[str], str]:
    def convert(value: str) -> str:
        if not regex.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid {what}")
        return value

    return convert


def _grep_text(value: str) -> str:
    if not value or len(value) > MAX_GREP:
        raise ValueError(f"--grep text must be 1 to {MAX_GREP} characters")
    return value


def _help_topic(value: str) -> str:
    topic = " ".join(value.lstrip(PREFIXES).lower().split())
    if topic not in _TOPICS:
        raise ValueError(f"no command called {value!r}{did_you_mean(topic, _TOPICS)}")
    return topic


# --- the table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arg:
    """A positional argument: the model field, the placeholder shown in usage, its converter."""

    field: str
    metavar: str
    convert: Callable[[str], Any]
    optional: bool = False


@dataclass(frozen=True)
class Flag:
    """A `--name` option: boolean when `convert` is None, else it takes one value."""

    field: str
    convert: Callable[[str], Any] | None = None
    metavar: str = ""
    show: Callable[[Any], str] = str  # the value back as text, for `command_text`


@dataclass(frozen=True)
class Spec:
    """One command form: its words (`backup create`), arguments, options and description."""

    words: tuple[str, ...]
    model: type[BaseCommand]
    description: str
    args: tuple[Arg, ...] = ()
    flags: dict[str, Flag] = field(default_factory=dict)
    keyword: tuple[int, str] | None = None  # a literal word at this position picks this form

    @property
    def name(self) -> str:
        return " ".join(self.words)

    @property
    def usage(self) -> str:
        parts = self.words_and_args(lambda arg: f"[{arg.metavar}]" if arg.optional else arg.metavar)
        for name, flag in self.flags.items():
            parts.append(f"[--{name} {flag.metavar}]" if flag.convert else f"[--{name}]")
        return " ".join(parts)

    def words_and_args(self, show: Callable[[Arg], str | None]) -> list[str]:
        """The command words, then each argument as `show` writes it (None: left out)."""
        parts = [*self.words]
        for index, arg in enumerate(self.args):
            if self.keyword and self.keyword[0] == index:
                parts.append(self.keyword[1])
            if (shown := show(arg)) is not None:
                parts.append(shown)
        if self.keyword and self.keyword[0] == len(self.args):
            parts.append(self.keyword[1])
        return parts


SERVICE = Arg("service", "SERVICE", service_name)
_REQUEST = Arg("request_id", "ID", _pattern("request id", _REQUEST_ID))

SPECS: tuple[Spec, ...] = (
    Spec(
        ("deploy",),
        DeployCommand,
        "Deploy TAG from the registry (it must exist), or without TAG re-pull the current image "
        "with a rollout restart; then track the rollout.",
        (SERVICE, Arg("tag", "TAG", image_tag, optional=True)),
        {"container": Flag("container", container_name, "C")},
    ),
    Spec(
        ("restart",),
        RestartCommand,
        "Rollout restart: new pods from the same template (re-pulls :latest).",
        (SERVICE,),
    ),
    Spec(
        ("scale",),
        ScaleCommand,
        "Set the number of replicas and track the change.",
        (SERVICE, Arg("replicas", "N", _bounded_int("N", 0, MAX_REPLICAS))),
    ),
    Spec(("status",), StatusCommand, "Rollout status of the deployment.", (SERVICE,)),
    Spec(
        ("rollback",),
        HistoryCommand,
        "Revisions with image, change-cause and age, and how far back a rollback can go.",
        (SERVICE,),
        keyword=(1, "history"),
    ),
    Spec(
        ("rollback",),
        RollbackCommand,
        "Roll back to the previous revision, or to REVISION; then track the rollout.",
        (
            SERVICE,
            Arg(
                "revision",
                "REVISION",
                _bounded_int("REVISION", 1, 2**31 - 1, " (omit it for the previous one)"),
                optional=True,
            ),
        ),
    ),
    Spec(("history",), HistoryCommand, "Same as `rollback SERVICE history`.", (SERVICE,)),
    Spec(
        ("logs",),
        LogsCommand,
        f"Logs of every pod of the service (default last {DEFAULT_TAIL} lines each); long output "
        "comes as a file.",
        (SERVICE,),
        {
            "tail": Flag("tail", _bounded_int("--tail", 1, MAX_TAIL), "N"),
            "previous": Flag("previous"),
            "container": Flag("container", container_name, "C"),
            "since": Flag("since_seconds", duration_seconds, "DURATION", format_duration),
            "grep": Flag("grep", _grep_text, "TEXT"),
        },
    ),
    Spec(
        ("backup", "create"),
        BackupCreateCommand,
        "Start a backup and follow it to the end.",
        (Arg("name", "NAME", _pattern("backup name", _BACKUP_NAME), optional=True),),
    ),
    Spec(("backup", "list"), BackupListCommand, "List the available backups."),
    Spec(
        ("backup", "restore"),
        BackupRestoreCommand,
        "Restore a backup and follow it to the end.",
        (Arg("backup_id", "ID", _pattern("backup id", _BACKUP_ID)),),
    ),
    Spec(
        ("health",),
        HealthCommand,
        "Cluster overview, or one service: pods, restarts, probes and warning events.",
        (Arg("service", "SERVICE", service_name, optional=True),),
    ),
    Spec(
        ("help",),
        HelpCommand,
        "List the commands, or show one command's usage.",
        (Arg("topic", "COMMAND", _help_topic, optional=True),),
    ),
    Spec(("approve",), ApproveCommand, "Approve a pending request.", (_REQUEST,)),
    Spec(("deny",), DenyCommand, "Deny a pending request.", (_REQUEST,)),
    Spec(("withdraw",), WithdrawCommand, "Take back your vote on a pending request.", (_REQUEST,)),
    Spec(("approvals",), ApprovalsCommand, "List pending approval requests."),
    Spec(("cancel",), CancelCommand, "Cancel a pending request.", (_REQUEST,)),
    Spec(
        ("audit",),
        AuditCommand,
        f"The last N audited actions (default {DEFAULT_AUDIT}).",
        (Arg("limit", "N", _bounded_int("N", 1, MAX_AUDIT), optional=True),),
    ),
)

_TOPICS: dict[str, tuple[Spec, ...]] = {}
for _spec in SPECS:
    for _depth in range(1, len(_spec.words) + 1):
        _key = " ".join(_spec.words[:_depth])
        _TOPICS[_key] = (*_TOPICS.get(_key, ()), _spec)
COMMAND_NAMES: tuple[str, ...] = tuple(dict.fromkeys(spec.words[0] for spec in SPECS))


def close_matches(word: str, candidates: Sequence[str], n: int = 3) -> list[str]:
    """Names close to `word`, best first, e.g. to suggest services for an unknown one."""
    return difflib.get_close_matches(word, list(candidates), n=n, cutoff=0.7)


def did_you_mean(word: str, candidates: Iterable[str], n: int = 2) -> str:
    """` (did you mean a or b?)` for the names close to `word`, or nothing."""
    close = close_matches(word, sorted(candidates), n=n)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


# --- parsing --------------------------------------------------------------------------------


def tokenize(text: str) -> list[str]:
    """Split like a shell (quotes group words), after dropping a leading `/` or `!`."""
    text = text.strip().translate(_SMART_QUOTES)
    if len(text) > MAX_COMMAND_CHARS:  # a paste by mistake: refused before any work on it
        raise ParseError(f"command too long ({len(text)} characters; at most {MAX_COMMAND_CHARS})")
    if text[:1] in PREFIXES:
        text = text[1:]
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise ParseError(f"cannot read the command: {exc} (check the quotes)") from None


def _pick_spec(tokens: list[str]) -> tuple[Spec, list[str]]:
    """The command form the tokens ask for, and the tokens after its words."""
    word = tokens[0].lower()
    if word not in COMMAND_NAMES:
        raise ParseError(
            f"unknown command {tokens[0]!r}{did_you_mean(word, COMMAND_NAMES)}; try help"
        )
    group = _TOPICS[word]
    if len(group[0].words) > 1:  # a command with subcommands, e.g. backup
        sub = tokens[1].lower() if len(tokens) > 1 else ""
        subs = [spec.words[1] for spec in group]
        if sub not in subs:
            problem = (
                f"unknown {word} subcommand {tokens[1]!r}" if sub else f"{word} needs a subcommand"
            )
            raise ParseError(problem + did_you_mean(sub, subs), [s.usage for s in group])
        return next(spec for spec in group if spec.words[1] == sub), tokens[2:]
    rest = tokens[1:]
    for spec in group:
        if spec.keyword is None:
            return spec, rest
        position, literal = spec.keyword
        if len(rest) > position and rest[position].lower() == literal:
            return spec, rest[:position] + rest[position + 1 :]
    raise AssertionError(f"no catch-all form for {word}")  # pragma: no cover - table invariant


def _convert(spec: Spec, convert: Callable[[str], Any], value: str) -> Any:
    try:
        return convert(value)
    except ValueError as exc:
        raise ParseError(f"{spec.name}: {exc}", _usages(spec)) from None


def _usages(spec: Spec) -> list[str]:
    return [s.usage for s in _TOPICS[spec.words[0]] if s.words == spec.words]


def _bind(spec: Spec, tokens: list[str]) -> BaseCommand:
    values: dict[str, Any] = {}
    positionals: list[str] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if not token.startswith("--") or token == "--":
            positionals.append(token)
            continue
        name, has_value, inline = token[2:].partition("=")
        flag = spec.flags.get(name)
        if flag is None:
            known = ", ".join(f"--{n}" for n in spec.flags) or "none"
            raise ParseError(
                f"{spec.name}: unknown option {token!r} (options: {known})", _usages(spec)
            )
        if flag.field in values:
            raise ParseError(f"{spec.name}: --{name} given twice", _usages(spec))
        if flag.convert is None:
            if has_value:
                raise ParseError(f"{spec.name}: --{name} takes no value", _usages(spec))
            values[flag.field] = True
            continue
        if not has_value:
            if index >= len(tokens) or tokens[index].startswith("--"):
                raise ParseError(
                    f"{spec.name}: --{name} needs a value ({flag.metavar})", _usages(spec)
                )
            inline = tokens[index]
            index += 1
        values[flag.field] = _convert(spec, flag.convert, inline)
    required = [arg for arg in spec.args if not arg.optional]
    if len(positionals) < len(required):
        missing = " ".join(arg.metavar for arg in spec.args[len(positionals) :] if not arg.optional)
        raise ParseError(f"{spec.name}: missing {missing}", _usages(spec))
    if len(positionals) > len(spec.args):
        extra = " ".join(positionals[len(spec.args) :])
        raise ParseError(f"{spec.name}: unexpected argument {extra!r}", _usages(spec))
    for arg, value in zip(spec.args, positionals, strict=False):
        values[arg.field] = _convert(spec, arg.convert, value)
    try:
        return spec.model(**values)
    except ValidationError as exc:  # a rule across arguments, e.g. --container without TAG
        error = exc.errors()[0]
        problem = str((error.get("ctx") or {}).get("error") or error["msg"])
        raise ParseError(f"{spec.name}: {problem}", _usages(spec)) from None


def parse_command(text: str) -> Command:
    """Parse one command line; raises `ParseError` (with usage) for anything not valid."""
    tokens = tokenize(text)
    if not tokens:
        raise ParseError("empty command; try help")
    spec, rest = _pick_spec(tokens)
    if spec.model is HelpCommand and len(rest) > 1:  # help backup create
        rest = [" ".join(rest)]
    return _bind(spec, rest)  # type: ignore[return-value]


# --- the other direction: usage, help and canonical text ------------------------------------


def spec_for(command: BaseCommand) -> Spec:
    """The table entry a parsed command came from (aliases map to their main form)."""
    return next(spec for spec in SPECS if spec.model is type(command))


def command_text(command: BaseCommand) -> str:
    """The canonical text of a command, e.g. for approval requests and the audit log."""
    spec = spec_for(command)
    data = command.model_dump()
    parts = spec.words_and_args(
        lambda arg: None if data[arg.field] is None else str(data[arg.field])
    )
    defaults = type(command).model_fields
    for name, flag in spec.flags.items():
        value = data.get(flag.field)
        if value == defaults[flag.field].default:
            continue
        parts.extend([f"--{name}"] if flag.convert is None else [f"--{name}", flag.show(value)])
    return shlex.join(parts)


def help_reply(command: HelpCommand) -> Reply:
    """`help`: every command with its usage; `help COMMAND`: that command's forms."""
    if command.topic is None:
        fields = [ReplyField(name=spec.usage, value=spec.description) for spec in SPECS]
        return Reply(
            title="holmbot commands", fields=fields, lines=["help COMMAND for one command"]
        )
    specs = _TOPICS[command.topic]
    lines = [f"{spec.usage}\n    {spec.description}" for spec in specs]
    return Reply(title=f"help: {command.topic}", lines=lines)
