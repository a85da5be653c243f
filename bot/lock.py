"""One bot per state file: an exclusive lock on `STATE_DIR/holmbot.lock` for the process's life."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Self

LOCK_FILENAME = "holmbot.lock"


class StateDirBusy(Exception):
    """Another holmbot holds the state directory."""


class StateLock:
    """Held while open; the kernel releases it if the process dies."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_FILENAME
        self._fd: int | None = None

    def acquire(self) -> Self:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StateDirBusy(
                f"another holmbot is running on {self.path.parent} (pid {holder}); "
                "one bot per state file"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
