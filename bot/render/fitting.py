"""Fitting a reply into a platform's message: what shows, and what goes into a file.

Commands return the whole content; each renderer calls `fit` with its platform's budget. What
does not fit is shown as its newest lines (logs and audit tables grow at the bottom) and the
whole goes up as a file.
"""

from __future__ import annotations

from dataclasses import dataclass

from commands.core.formatting import truncate
from commands.core.models import Attachment, Reply


@dataclass(frozen=True)
class Budget:
    """How much of a reply's lines and table one message of a platform can show."""

    max_lines: int
    max_chars: int


@dataclass(frozen=True)
class Fitted:
    """The lines and table rows to show, and the file to attach (None: everything shows, so a
    reply's own attachment, the whole of its content, need not be sent)."""

    lines: list[str]
    table_rows: list[list[str]]
    file: Attachment | None
    cut: int  # how many lines or rows are left to the file


def _tail(items: list[str], budget: Budget) -> list[str]:
    kept: list[str] = []
    used = 0
    for item in reversed(items[-budget.max_lines :] if budget.max_lines else []):
        if used + len(item) + 1 > budget.max_chars:
            if not kept:  # one line longer than the budget: show its start
                kept.append(truncate(item, budget.max_chars))
            break
        kept.append(item)
        used += len(item) + 1
    return kept[::-1]


def fit(reply: Reply, budget: Budget) -> Fitted:
    """Keep the newest lines (or table rows) within `budget`; attach the whole when cut."""
    table = reply.table
    rows = table.rows if table else []
    row_texts = table.text_lines()[1:] if table else []
    if (
        not reply.omitted_lines
        and len(reply.lines) <= budget.max_lines
        and sum(len(s) + 1 for s in reply.lines) + sum(len(s) + 1 for s in row_texts)
        <= budget.max_chars
        and len(rows) <= budget.max_lines
    ):
        return Fitted(reply.lines, rows, None, 0)
    if rows:
        shown_rows = rows[len(rows) - len(_tail(row_texts, budget)) :]
        lines = _tail(reply.lines, Budget(budget.max_lines, budget.max_chars // 4))
        cut = len(rows) - len(shown_rows) + len(reply.lines) - len(lines)
    else:
        shown_rows, lines = [], _tail(reply.lines, budget)
        cut = len(reply.lines) - len(lines)
    return Fitted(lines, shown_rows, reply.attachment or as_file(reply), cut + reply.omitted_lines)


def as_file(reply: Reply) -> Attachment:
    """The whole reply as text, for a reply that has no file of its own."""
    name = "".join(c if c.isalnum() else "-" for c in reply.title.lower())[:40].strip("-")
    return Attachment(filename=f"{name or 'reply'}.txt", content=reply.text + "\n")
