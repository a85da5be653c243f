"""What the Slack app registers: its slash commands and the events it subscribes to, and how
each slash command or mention becomes command text for the one parser.

`/deploy nova v2` is `deploy nova v2`; `/holmbot scale nova 3` is `scale nova 3` (an empty
`/holmbot` is `help`); a mention `@holmbot deploy nova v2` is the text after the mention.
`deploy/slack-app-manifest.yaml` lists exactly these commands (with these usage hints, made from
the parser's usage), these events and these scopes; a test holds the two together.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from commands.core.parser import SPECS

EVENTS = ("app_mention", "reaction_added", "reaction_removed")
# the bot token's scopes, each for what the adapter does with it
SCOPES = {
    "commands": "the slash commands",
    "app_mentions:read": "the app_mention event",
    "chat:write": "chat.postMessage, chat.update, chat.postEphemeral",
    "reactions:read": "the reaction events, and reactions.get: votes made while disconnected",
    "reactions:write": "reactions.add: the vote reactions on request messages",
    "files:write": "files_upload_v2: long output as a file",
    "usergroups:read": "usergroups.users.list: the members of the policy's user groups",
    "channels:read": "conversations.info: whether the bot is in a public channel",
    "groups:read": "conversations.info: whether the bot is in a private channel",
}
_LEADING_MENTIONS = re.compile(r"^(\s*<@[A-Z0-9]+(?:\|[^>]*)?>[\s,:]*)+")


@dataclass(frozen=True)
class SlashCommand:
    """One slash command: `/deploy` runs `deploy ...`; `/holmbot` (verb None) runs its text."""

    name: str
    verb: str | None
    description: str

    def text(self, typed: str) -> str:
        """The command text for what was typed after the slash command."""
        typed = html.unescape(typed).strip()
        if self.verb is None:
            return typed or "help"
        return f"{self.verb} {typed}".strip()

    @property
    def usage_hint(self) -> str:
        """The parser's usage of the command's forms, without the command's own word."""
        if self.verb is None:
            others = ", ".join(sorted(c for c in _VERBS if c not in _DEDICATED))
            return f"COMMAND [ARGS]: {others}"
        forms = [s.usage.split(" ", 1) for s in SPECS if s.words[0] == self.verb]
        return " | ".join(dict.fromkeys(form[1] if len(form) > 1 else "" for form in forms))


SLASH_COMMANDS = (
    SlashCommand("/deploy", "deploy", "Deploy a tag of a service and follow the rollout"),
    SlashCommand("/logs", "logs", "Logs of a service's pods; long output comes as a file"),
    SlashCommand("/rollback", "rollback", "Roll a service back, or list its revisions"),
    SlashCommand("/backup", "backup", "Create, list or restore backups"),
    SlashCommand("/health", "health", "Cluster overview, or one service's health"),
    SlashCommand("/holmbot", None, "Any holmbot command (try /holmbot help)"),
)
_VERBS = {spec.words[0] for spec in SPECS}
_DEDICATED = {command.verb for command in SLASH_COMMANDS}
BY_NAME = {command.name: command for command in SLASH_COMMANDS}


def mention_text(text: str) -> str:
    """The command in a message that mentions the bot: the text after the leading mention."""
    return _LEADING_MENTIONS.sub("", html.unescape(text), count=1).strip() or "help"
