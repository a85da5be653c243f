"""The console adapter: one command per line from a terminal or a script.

Lines are `COMMAND` (run as the default user) or `as PLATFORM:ID: COMMAND`. Against a real
cluster only console users may be played (`as console:alice: ...`): a shell on the bot's host
must not forge a chat user's vote. On the sandbox any user may be, and the console shows the
notices of every platform. The console-only line `wait` waits until every tracked operation
started so far has finished. Replies and progress are printed as plain text; a failed command
is a reply, not an exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
import sys
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from bot.adapter import show_notices
from bot.console.render import file_of, render_progress, render_reply
from commands.core.models import Invocation, Notice, Outcome, Platform, Progress, User
from commands.flow.layer import CommandLayer

CHANNEL = "console"
log = logging.getLogger(__name__)
_AS_USER = re.compile(r"^as\s+([^\s:]+(?::[^\s:]+)?):\s*(.*)$")


class NotAConsoleUser(Exception):
    """`--as` names a chat user on a real cluster: the console does not start."""


def impersonation_refusal(user: User) -> str:
    """Why the console does not speak as `user` on a real cluster."""
    return (
        f"the console speaks only as console users, not as {user.key}: "
        "chat users vote in their chat (other users may be played on --sandbox)"
    )


class ConsoleSession:
    """Feeds lines to the command layer and prints what comes back."""

    def __init__(
        self,
        layer: CommandLayer,
        default_user: User,
        out: TextIO = sys.stdout,
        attachments_dir: Path | None = None,
        *,
        any_user: bool = False,
    ) -> None:
        """`any_user`: lines may run as users of every platform (the sandbox); otherwise only
        as console users."""
        self.layer = layer
        self.default_user = default_user
        self.out = out
        self.attachments_dir = attachments_dir
        self.any_user = any_user
        self.platforms = tuple(Platform) if any_user else (Platform.CONSOLE,)
        self._followers: set[asyncio.Task[None]] = set()
        self._notices = [
            asyncio.create_task(show_notices(self.layer, platform, self._show_notice))
            for platform in self.platforms
        ]

    async def close(self) -> None:
        """Stop showing notices."""
        for task in self._notices:
            task.cancel()
        await asyncio.gather(*self._notices, return_exceptions=True)

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    async def run_line(self, line: str) -> None:
        """Run one input line: a command, `as USER: COMMAND`, `wait`, or nothing."""
        line = line.strip()
        if not line or line.startswith("#"):
            return
        if line == "wait":
            await self.wait()
            return
        user, text = self.default_user, line
        if match := _AS_USER.match(line):
            try:
                user = User.parse(match.group(1))
            except ValueError as error:
                self.say(f"✘ {error}")
                return
            text = match.group(2)
            if not text:
                self.say("✘ as USER: needs a command, e.g. as console:alice: health")
                return
        invocation = Invocation(user=user, channel=CHANNEL, text=text)
        if user.platform is not Platform.CONSOLE and not self.any_user:
            await self.show(await self.layer.refuse(invocation, impersonation_refusal(user)))
            return
        await self.show(await self.layer.handle(invocation))

    async def show(self, outcome: Outcome) -> None:
        """Print a reply, and follow its progress in the background."""
        if outcome.duplicate:
            return
        try:
            where = await self._save_attachment(outcome)
        except OSError as error:  # the reply still shows, with its preview
            where = f"not saved: {error.strerror or error}"
        self.say(render_reply(outcome.reply, where))
        if outcome.progress is not None:
            task = asyncio.create_task(self._follow(outcome.progress))
            self._followers.add(task)
            task.add_done_callback(self._followers.discard)

    async def wait(self) -> None:
        """Wait until every notice is shown and every operation followed so far (also those
        the notices started) has reached its final result."""
        while True:
            for platform in self.platforms:
                await self.layer.notices.join(platform)
            if not self._followers:
                return
            await asyncio.gather(*self._followers, return_exceptions=True)

    async def _show_notice(self, notice: Notice) -> None:
        await self.show(notice.outcome)

    async def _follow(self, progress: AsyncIterator[Progress]) -> None:
        """Print each update that reads differently from the one before it."""
        last = None
        async for item in progress:
            text = render_progress(item)
            if text != last:
                self.say(text)
            last = text

    async def _save_attachment(self, outcome: Outcome) -> str | None:
        """Write a long output to a file of its own (off the event loop); its path, or None."""
        attachment = file_of(outcome.reply)
        if attachment is None or self.attachments_dir is None:
            return None
        name = Path(attachment.filename)  # a stamp keeps earlier replies' files as they were
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
        path = self.attachments_dir / f"{name.stem}-{stamp}{name.suffix}"

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(attachment.content)

        await asyncio.to_thread(write)
        return str(path)


async def read_lines(source: TextIO, prompt: str | None, out: TextIO) -> AsyncIterator[str]:
    """Lines from `source`, read by a daemon thread so that neither the event loop nor the
    process's exit waits on a terminal; `prompt` is shown before each line when given."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()
    if isinstance(source, io.TextIOWrapper):
        source.reconfigure(errors="replace")  # a stray Latin-1 byte is a character, not a stop

    def read() -> None:
        try:
            while line := source.readline():
                loop.call_soon_threadsafe(lines.put_nowait, line)
        except RuntimeError:  # the loop is gone: the console has stopped
            return
        except Exception:
            log.exception("reading the console's input failed")
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(lines.put_nowait, "")  # end of input, whatever ended it

    threading.Thread(target=read, name="console-input", daemon=True).start()
    while True:
        if prompt:
            print(prompt, end="", file=out, flush=True)
        line = await lines.get()
        if not line:
            return
        yield line
