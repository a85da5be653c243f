"""Plain-text rendering of replies and progress for the terminal.

Users show as `PLATFORM:ID`, actions as the commands to type, and a long output as its newest
lines with the path of the file that holds all of it.
"""

from __future__ import annotations

from bot.render.fitting import Budget, fit
from commands.core.models import Attachment, FinalResult, Progress, Reply, Tone, plain_mention

_MARKS = {Tone.INFO: "", Tone.SUCCESS: "✔ ", Tone.WARNING: "! ", Tone.ERROR: "✘ "}
TERMINAL = Budget(max_lines=40, max_chars=6000)  # a screenful; the rest is in the file


def file_of(reply: Reply) -> Attachment | None:
    """The file a reply goes with on the terminal when it is cut: its own, or the whole of it."""
    fitted = fit(reply.with_mentions(plain_mention), TERMINAL)
    return fitted.file


def render_reply(reply: Reply, attachment_path: str | None = None) -> str:
    """A reply as terminal text; a file is named by where it was saved."""
    reply = reply.with_mentions(plain_mention)
    fitted = fit(reply, TERMINAL)
    table = reply.table.model_copy(update={"rows": fitted.table_rows}) if reply.table else None
    shown = Reply(title=reply.title, lines=fitted.lines, table=table, fields=reply.fields)
    text = _MARKS[reply.tone] + shown.text
    if fitted.file is not None:
        where = attachment_path or fitted.file.filename
        lines = fitted.file.line_count
        text += f"\n[full output: {where} ({lines} lines)]"
    if reply.actions:
        text += "\n→ " + " · ".join(action.command for action in reply.actions)
    return text


def render_progress(item: Progress) -> str:
    """One progress update or the final result, tagged with its operation id."""
    if isinstance(item, FinalResult):
        mark = "✔" if item.ok else "✘"
        actions = item.reply().actions
        then = ("\n→ " + " · ".join(a.command for a in actions)) if actions else ""
        return f"[{item.operation_id}] {mark} {item.message}{then}"
    problems = "".join(f"\n[{item.operation_id}]   ! {problem}" for problem in item.problems)
    return f"[{item.operation_id}] {item.message}{problems}"
