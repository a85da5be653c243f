"""`holmbot audit`: the audit log on the command line, also while the bot runs."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime
from pathlib import Path
from typing import TextIO

from commands.core.config import Config, ConfigError, load_config
from commands.handlers.audit import FORMATS, parse_since, render
from commands.store.state import DB_FILENAME, AuditEntry, State, StateError


def add_audit_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `holmbot audit`, added to its subparser."""
    parser.add_argument("--config", type=Path, help="holmbot.yaml (default: $HOLMBOT_CONFIG)")
    parser.add_argument("--since", help="only entries newer than this: 30m, 2h, 7d or a date")
    parser.add_argument("--user", help="only this user's entries, e.g. slack:U024BE7LH")
    parser.add_argument("--limit", type=int, help="only the newest N entries")
    parser.add_argument("--format", choices=FORMATS, default="table", help="default: table")


def run_audit_cli(
    args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """`holmbot audit`: print the entries; 0 on success, 2 for bad input or config."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        since = parse_since(args.since) if args.since else None
        if args.limit is not None and args.limit < 1:
            raise ValueError(f"--limit must be at least 1, got {args.limit}")
        config: Config = load_config(args.config)
    except (ValueError, ConfigError) as exc:
        print(f"holmbot audit: {exc}", file=err)
        return 2
    path = config.state_dir / DB_FILENAME
    try:
        entries = asyncio.run(_read(path, since, args.user, args.limit))
    except StateError as exc:
        print(f"holmbot audit: {exc} (has the bot run with this state_dir?)", file=err)
        return 2
    out.write(render(entries, args.format))
    return 0


async def _read(
    path: Path, since: datetime | None, user: str | None, limit: int | None
) -> list[AuditEntry]:
    async with await State.open(path, read_only=True) as state:
        return await state.audit_entries(since=since, user=user, limit=limit)
