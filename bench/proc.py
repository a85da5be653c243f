"""A benchmarked process's memory, read from /proc, and the environment it runs with."""

from __future__ import annotations

from pathlib import Path

# The bot's process environment as the Dockerfile sets it (glibc's malloc: see the Dockerfile).
IMAGE_ENV = {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_THRESHOLD_": "131072"}


def status_kib(pid: int, key: str) -> int:
    """A `VmRSS`-like line of /proc/PID/status, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise KeyError(key)


def reset_peak(pid: int) -> None:
    """Set the process's VmHWM back to its current resident set (Linux's clear_refs 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
