"""Message commands: `!deploy nova v2` (prefix from config) or `@holmbot deploy nova v2`.

A prefixed message is a command only when its first word is one (so `!play` for another bot
is left alone); a message that mentions the bot first is always one. Without the message
content intent Discord blanks other messages' content, so only mentions still work.
"""

from __future__ import annotations

from commands.core.parser import COMMAND_NAMES


def command_text(content: str, prefix: str, bot_id: int) -> str | None:
    """The command a message carries, or None when it carries none."""
    text = content.strip()
    for mention in (f"<@{bot_id}>", f"<@!{bot_id}>"):
        if text.startswith(mention):
            return text[len(mention) :].strip() or "help"
    if not prefix or not text.startswith(prefix):
        return None
    rest = text[len(prefix) :]
    words = rest.split(maxsplit=1)
    if not words or rest[:1].isspace() or words[0].lower() not in COMMAND_NAMES:
        return None
    return rest
