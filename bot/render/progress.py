"""A progress bar as text, for any platform's progress message."""

from __future__ import annotations

FILLED, EMPTY = "▰", "▱"


def progress_bar(done: int, total: int, width: int = 10) -> str:
    """`▰▰▰▱▱▱▱▱▱▱ 3/10`: `done` of `total` in `width` cells (clamped; 0 of 0 is empty)."""
    done = max(0, min(done, total))
    cells = round(width * done / total) if total > 0 else 0
    return f"{FILLED * cells}{EMPTY * (width - cells)} {done}/{total}"
