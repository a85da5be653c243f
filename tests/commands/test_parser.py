"""The one parser: every command, every prefix, and bad input answered with usage."""

from __future__ import annotations

import pytest

from commands.core.parser import (
    COMMAND_ADAPTER,
    SPECS,
    ApprovalsCommand,
    ApproveCommand,
    AuditCommand,
    BackupCreateCommand,
    BackupListCommand,
    BackupRestoreCommand,
    CancelCommand,
    DenyCommand,
    DeployCommand,
    HealthCommand,
    HelpCommand,
    HistoryCommand,
    LogsCommand,
    ParseError,
    RestartCommand,
    RollbackCommand,
    ScaleCommand,
    StatusCommand,
    command_text,
    help_reply,
    parse_command,
)

CASES = [
    ("deploy nova v1.4.2", DeployCommand(service="nova", tag="v1.4.2"), "deploy"),
    ("deploy nova", DeployCommand(service="nova"), "deploy"),
    (
        "deploy gateway v2.2.0 --container envoy",
        DeployCommand(service="gateway", tag="v2.2.0", container="envoy"),
        "deploy",
    ),
    ("restart nova", RestartCommand(service="nova"), "restart"),
    ("scale nova 3", ScaleCommand(service="nova", replicas=3), "scale"),
    ("scale nova 0", ScaleCommand(service="nova", replicas=0), "scale"),
    ("status nova", StatusCommand(service="nova"), "status"),
    ("rollback nova", RollbackCommand(service="nova"), "rollback"),
    ("rollback nova 3", RollbackCommand(service="nova", revision=3), "rollback"),
    ("rollback nova history", HistoryCommand(service="nova"), "history"),
    ("rollback nova HISTORY", HistoryCommand(service="nova"), "history"),
    ("history nova", HistoryCommand(service="nova"), "history"),
    ("logs nova", LogsCommand(service="nova"), "logs"),
    (
        "logs nova --tail 20 --previous --container app --since 1h30m --grep 'conn refused'",
        LogsCommand(
            service="nova",
            tail=20,
            previous=True,
            container="app",
            since_seconds=5400,
            grep="conn refused",
        ),
        "logs",
    ),
    (
        "logs nova --since=30s --tail=5000",
        LogsCommand(service="nova", since_seconds=30, tail=5000),
        "logs",
    ),
    ("logs nova --since 2h", LogsCommand(service="nova", since_seconds=7200), "logs"),
    ("logs nova --since 5m", LogsCommand(service="nova", since_seconds=300), "logs"),
    ("backup create", BackupCreateCommand(), "backup.create"),
    ("backup create nightly-1", BackupCreateCommand(name="nightly-1"), "backup.create"),
    ("backup list", BackupListCommand(), "backup.list"),
    (
        "backup restore backup-20240115-120000",
        BackupRestoreCommand(backup_id="backup-20240115-120000"),
        "backup.restore",
    ),
    ("health", HealthCommand(), "health"),
    ("health nova", HealthCommand(service="nova"), "health"),
    ("help", HelpCommand(), "help"),
    ("help deploy", HelpCommand(topic="deploy"), "help"),
    ("help /logs", HelpCommand(topic="logs"), "help"),
    ("help backup create", HelpCommand(topic="backup create"), "help"),
    ("approve req-12", ApproveCommand(request_id="req-12"), "approve"),
    ("deny req-12", DenyCommand(request_id="req-12"), "deny"),
    ("approvals", ApprovalsCommand(), "approvals"),
    ("cancel req-12", CancelCommand(request_id="req-12"), "cancel"),
    ("audit", AuditCommand(), "audit"),
    ("audit 5", AuditCommand(limit=5), "audit"),
]


@pytest.mark.parametrize("prefix", ["", "/", "!"])
@pytest.mark.parametrize(("text", "expected", "action"), CASES)
def test_every_command_parses_the_same_with_every_prefix(
    prefix: str, text: str, expected: object, action: str
) -> None:
    command = parse_command(f"  {prefix}{text}  ")
    assert command == expected
    assert command.action == action


def test_service_is_set_for_service_commands_only() -> None:
    assert parse_command("deploy nova v2").service == "nova"
    assert parse_command("logs nova").service == "nova"
    assert parse_command("health").service is None
    assert parse_command("backup list").service is None


def test_quotes_and_chat_smart_quotes_group_words() -> None:
    assert parse_command('logs nova --grep "two words"').grep == "two words"  # type: ignore[union-attr]
    assert parse_command("logs nova --grep \u201ctwo words\u201d").grep == "two words"  # type: ignore[union-attr]


def test_command_word_is_case_insensitive_but_names_are_not() -> None:
    assert parse_command("DEPLOY nova v2") == DeployCommand(service="nova", tag="v2")
    with pytest.raises(ParseError, match="did you mean nova"):
        parse_command("deploy Nova v2")


@pytest.mark.parametrize(("text", "_expected", "_action"), CASES)
def test_canonical_text_parses_back_to_the_same_command(
    text: str, _expected: object, _action: str
) -> None:
    command = parse_command(text)
    assert parse_command(command_text(command)) == command


def test_canonical_text_examples() -> None:
    assert command_text(parse_command("history nova")) == "rollback nova history"
    assert (
        command_text(parse_command("!logs nova --since 5400 --grep 'a b'"))
        == "logs nova --since 1h30m --grep 'a b'"
    )


def test_commands_round_trip_through_the_union_adapter() -> None:
    for text, expected, _ in CASES:
        dumped = COMMAND_ADAPTER.dump_python(parse_command(text))
        assert COMMAND_ADAPTER.validate_python(dumped) == expected


BAD = [
    ("", "empty command", None),
    ("   ", "empty command", None),
    ("delpoy nova v2", "unknown command 'delpoy' (did you mean deploy?)", None),
    ("deploy", "deploy: missing SERVICE", "deploy SERVICE [TAG] [--container C]"),
    ("deploy nova v2 extra", "unexpected argument 'extra'", "deploy SERVICE [TAG]"),
    ("deploy -nova v2", "not a valid service name", "deploy SERVICE [TAG]"),
    ("deploy nova_x v2", "not a valid service name", "deploy SERVICE [TAG]"),
    (f"deploy {'a' * 64} v2", "not a valid service name", "deploy SERVICE [TAG]"),
    ("deploy nova .v2", "not a valid image tag", "deploy SERVICE [TAG]"),
    (f"deploy nova {'v' * 129}", "not a valid image tag", "deploy SERVICE [TAG]"),
    ("deploy nova v2:latest", "not a valid image tag", "deploy SERVICE [TAG]"),
    ("deploy nova v2 --force", "unknown option '--force'", "deploy SERVICE [TAG]"),
    ("deploy nova --container", "--container needs a value", "deploy SERVICE [TAG]"),
    ("deploy nova --container nova", "--container needs a TAG", "deploy SERVICE [TAG]"),
    ("deploy 'nova v2", "check the quotes", None),
    ("restart", "missing SERVICE", "restart SERVICE"),
    ("scale nova", "missing N", "scale SERVICE N"),
    ("scale nova 51", "from 0 to 50", "scale SERVICE N"),
    ("scale nova -1", "from 0 to 50", "scale SERVICE N"),
    ("scale nova two", "from 0 to 50", "scale SERVICE N"),
    ("status nova extra", "unexpected argument", "status SERVICE"),
    ("rollback nova 0", "omit it for the previous one", "rollback SERVICE [REVISION]"),
    ("rollback nova v2", "whole number", "rollback SERVICE history"),
    ("rollback nova history 3", "unexpected argument '3'", "rollback SERVICE history"),
    ("history", "missing SERVICE", "history SERVICE"),
    ("logs nova --tail 0", "--tail must be a whole number from 1 to 5000", "logs SERVICE"),
    ("logs nova --tail 5001", "from 1 to 5000", "logs SERVICE"),
    ("logs nova --since 5x", "not a duration", "logs SERVICE"),
    ("logs nova --since 0s", "longer than zero", "logs SERVICE"),
    ("logs nova --previous=yes", "--previous takes no value", "logs SERVICE"),
    ("logs nova --tail 5 --tail 6", "--tail given twice", "logs SERVICE"),
    ("logs nova --grep ''", "--grep text must be", "logs SERVICE"),
    ("backup", "backup needs a subcommand", "backup restore ID"),
    ("backup frob", "unknown backup subcommand 'frob'", "backup create [NAME]"),
    ("backup restore", "missing ID", "backup restore ID"),
    ("backup restore ../etc/passwd", "not a valid backup id", "backup restore ID"),
    ("backup list all", "unexpected argument 'all'", "backup list"),
    ("health nova gateway", "unexpected argument 'gateway'", "health [SERVICE]"),
    ("help frob", "no command called 'frob'", "help [COMMAND]"),
    ("approve", "missing ID", "approve ID"),
    ("audit 0", "from 1 to", "audit [N]"),
]


@pytest.mark.parametrize("prefix", ["", "/", "!"])
@pytest.mark.parametrize(("text", "message", "usage"), BAD)
def test_bad_input_is_a_parse_error_with_usage(
    prefix: str, text: str, message: str, usage: str | None
) -> None:
    with pytest.raises(ParseError) as caught:
        parse_command(prefix + text)
    reply = caught.value.reply()
    assert message in reply.title
    assert reply.tone == "error"
    if usage is not None:
        assert any(line.startswith(f"usage: {usage}") for line in reply.lines), reply.lines


def test_help_lists_every_command_from_the_table() -> None:
    reply = help_reply(parse_command("help"))
    usages = [field.name for field in reply.fields]
    assert usages == [spec.usage for spec in SPECS]
    assert "deploy SERVICE [TAG] [--container C]" in usages
    assert "rollback SERVICE history" in usages
    assert any(u.startswith("logs SERVICE [--tail N] [--previous]") for u in usages)
    assert {"approve ID", "deny ID", "cancel ID", "approvals", "audit [N]"} <= set(usages)


def test_help_for_one_command_shows_all_its_forms() -> None:
    text = help_reply(parse_command("help rollback")).text
    assert "rollback SERVICE history" in text
    assert "rollback SERVICE [REVISION]" in text
    text = help_reply(parse_command("help backup")).text
    assert all(f"backup {sub}" in text for sub in ("create [NAME]", "list", "restore ID"))
