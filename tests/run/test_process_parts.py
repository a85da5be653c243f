"""The process's parts on their own: the log redaction filter and the lazy imports."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

from bot.logs import REDACTED, setup_logging

DISCORD_SHAPED = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.abcdefghijklmnopqrstuvwxyz0123"


def test_secrets_and_token_shapes_are_redacted_everywhere_in_a_line() -> None:
    out = io.StringIO()
    setup_logging("INFO", ["hunter2-signing-secret"], out)
    log = logging.getLogger("holmbot.test")
    log.info("signing with %s", "hunter2-signing-secret", extra={"user": "slack:U1"})
    log.warning("token xoxb-111-222-abcdefgh and %s in a message", DISCORD_SHAPED)
    try:
        raise RuntimeError("auth failed for xapp-1-A111-222-abcdef")
    except RuntimeError:
        log.exception("slack said no")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    text = out.getvalue()
    for secret in ("hunter2-signing-secret", "xoxb-111", "xapp-1-A111", DISCORD_SHAPED):
        assert secret not in text
    assert lines[0]["message"] == f"signing with {REDACTED}"
    assert lines[0]["user"] == "slack:U1"
    assert lines[1]["message"] == f"token {REDACTED} and {REDACTED} in a message"
    assert "RuntimeError: auth failed for [redacted]" in lines[2]["error"]
    assert {line["level"] for line in lines} == {"INFO", "WARNING", "ERROR"}


def test_a_slack_only_bot_never_imports_discord_or_the_sandbox() -> None:
    code = (
        "import sys, bot.run, bot.slack.adapter, bot.probes, bot.cli;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'discord', 'sandbox'}))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "[]"
