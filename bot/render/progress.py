"""A progress bar as text, for any platform's progress message."""

from __future__ import annotations

from commands.core.models import FinalResult, Phase, Progress

FILLED, EMPTY = "▰", "▱"
_STEPS = (Phase.WAITING, Phase.PROGRESSING, Phase.VERIFYING, Phase.DONE)


def progress_bar(done: int, total: int, width: int = 10) -> str:
    """`▰▰▰▱▱▱▱▱▱▱ 3/10`: `done` of `total` in `width` cells (clamped; 0 of 0 is empty)."""
    done = max(0, min(done, total))
    cells = round(width * done / total) if total > 0 else 0
    return f"{FILLED * cells}{EMPTY * (width - cells)} {done}/{total}"


def operation_bar(item: Progress) -> str:
    """A step's bar: replicas both updated and available of those desired (all of them once
    verifying); an operation without replicas (a backup) shows its phase as steps."""
    if isinstance(item, FinalResult):
        return progress_bar(int(item.ok), 1)
    if not item.desired:
        step = _STEPS.index(item.phase) if item.phase in _STEPS else 1
        return progress_bar(step, len(_STEPS) - 1)
    if item.phase is Phase.VERIFYING:
        return progress_bar(item.desired, item.desired)
    return progress_bar(min(item.updated or 0, item.available or 0), item.desired)
