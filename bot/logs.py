"""The process's log lines: one JSON object per line on stderr, secrets redacted.

Each line has `time`, `level`, `logger`, `message`, and `operation_id`, `request_id`, `user`
when a call passes them in `extra=`. The redaction filter replaces every configured secret and
anything shaped like a Slack or Discord token, in the message, its arguments and exception text.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO

REDACTED = "[redacted]"
CONTEXT_FIELDS = ("operation_id", "request_id", "user", "platform")
# Slack tokens (xoxb-, xoxp-, xapp-, ...) and Discord bot tokens (three base64url parts).
TOKEN_SHAPES = re.compile(
    r"\bx(?:ox[abpsr]|app)-[A-Za-z0-9-]{8,}"
    r"|\b[A-Za-z0-9_-]{23,28}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,}"
)


class Redactor(logging.Filter):
    """Rewrites a record so that no secret reaches a handler."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return TOKEN_SHAPES.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonLines(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            if (value := getattr(record, name, None)) is not None:
                line[name] = str(value)
        if record.exc_text:
            line["error"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


def setup_logging(level: str, secrets: Iterable[str], stream: TextIO = sys.stderr) -> Redactor:
    """Send every logger's records, redacted, as JSON lines to `stream`."""
    handler = logging.StreamHandler(stream)
    redactor = Redactor(secrets)
    handler.addFilter(redactor)
    handler.setFormatter(JsonLines())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    return redactor
