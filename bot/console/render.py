"""Plain-text rendering of replies and progress for the terminal."""

from __future__ import annotations

from commands.core.models import FinalResult, Progress, Reply, Tone

_MARKS = {Tone.INFO: "", Tone.SUCCESS: "✔ ", Tone.WARNING: "! ", Tone.ERROR: "✘ "}


def render_reply(reply: Reply, attachment_path: str | None = None) -> str:
    """A reply as terminal text; an attachment is named by where it was saved."""
    text = _MARKS[reply.tone] + reply.text
    if reply.attachment is not None:
        where = attachment_path or reply.attachment.filename
        lines = reply.attachment.content.count("\n")
        text += f"\n[full output: {where} ({lines} lines)]"
    return text


def render_progress(item: Progress) -> str:
    """One progress update or the final result, tagged with its operation id."""
    if isinstance(item, FinalResult):
        mark = "✔" if item.ok else "✘"
        return f"[{item.operation_id}] {mark} {item.message}"
    problems = "".join(f"\n[{item.operation_id}]   ! {problem}" for problem in item.problems)
    return f"[{item.operation_id}] {item.message}{problems}"
