"""Small text helpers shared by command replies: sizes, ages, durations, truncation."""

from __future__ import annotations

from datetime import UTC, datetime


def human_bytes(size: int | None) -> str:
    """`52428800` -> `50.0 MiB`; None -> `-`."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def human_seconds(seconds: float) -> str:
    """`5400` -> `1h30m`, `42.4` -> `42s`, `0.3` -> `0.3s`."""
    if seconds < 10:
        return f"{seconds:.1f}s".replace(".0s", "s")
    whole = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts[:2])


def age(when: datetime | None, now: datetime | None = None) -> str:
    """How long ago, like kubectl's AGE column: `5m`, `3h20m`, `2d4h`; None -> `-`."""
    if when is None:
        return "-"
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = max(0.0, ((now or datetime.now(UTC)) - when).total_seconds())
    return human_seconds(seconds) if seconds >= 10 else f"{int(seconds)}s"


def truncate(text: str, limit: int) -> str:
    """`text`, cut to at most `limit` characters with an ellipsis."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"
