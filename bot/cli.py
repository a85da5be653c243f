"""The `holmbot` command line: `holmbot sandbox`, `holmbot console`, ..."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.audit_cli import add_audit_arguments, run_audit_cli
from bot.console.main import DEFAULT_USER
from commands.clients.kube import KubeError
from commands.core.config import ConfigError
from commands.core.models import User
from commands.store.state import StateError


def _positive_float(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="holmbot", description="Chat-ops for the HolmOS Kubernetes cluster."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    sandbox = commands.add_parser(
        "sandbox", help="run a local HolmOS (Kubernetes API, registry, backup, health)"
    )
    sandbox.add_argument(
        "--state-dir", type=Path, help="where state and kubeconfig go (default: a temporary dir)"
    )
    sandbox.add_argument(
        "--speed", type=_positive_float, default=1.0, help="simulated time runs this much faster"
    )
    console = commands.add_parser("console", help="type commands in a terminal (or pipe them in)")
    console.add_argument("--config", type=Path, help="bot config YAML (default: $HOLMBOT_CONFIG)")
    console.add_argument(
        "--sandbox", action="store_true", help="start the local sandbox and run against it"
    )
    console.add_argument(
        "--as", dest="user", default=DEFAULT_USER, help="default user, PLATFORM:ID"
    )
    console.add_argument(
        "--speed", type=_positive_float, default=5.0, help="sandbox speed (with --sandbox)"
    )
    run = commands.add_parser("run", help="run the bot: every configured chat app, the probes")
    run.add_argument("--config", type=Path, help="bot config YAML (default: $HOLMBOT_CONFIG)")
    run.add_argument(
        "--sandbox", action="store_true", help="start the local sandbox and run against it"
    )
    run.add_argument(
        "--speed", type=_positive_float, default=5.0, help="sandbox speed (with --sandbox)"
    )
    audit = commands.add_parser("audit", help="print the audit log")
    add_audit_arguments(audit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `holmbot` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "sandbox":
        from sandbox.cluster import run_until_stopped

        asyncio.run(run_until_stopped(args.state_dir, args.speed))
    elif args.command == "audit":
        return run_audit_cli(args)
    elif args.command == "run":
        from bot.lock import StateDirBusy
        from bot.run import NothingToRun, run_bot

        try:
            asyncio.run(run_bot(args.config, use_sandbox=args.sandbox, speed=args.speed))
        except (ConfigError, KubeError, StateError, NothingToRun, StateDirBusy) as error:
            print(f"holmbot run: {error}", file=sys.stderr)
            return 2
    elif args.command == "console":
        from bot.console.main import run_console
        from bot.console.session import NotAConsoleUser

        try:
            user = User.parse(args.user)
        except ValueError as error:
            print(f"holmbot console: {error}", file=sys.stderr)
            return 2
        try:
            asyncio.run(
                run_console(
                    args.config, use_sandbox=args.sandbox, default_user=user, speed=args.speed
                )
            )
        except (ConfigError, KubeError, StateError, NotAConsoleUser) as error:
            print(f"holmbot: {error}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 130
        except asyncio.CancelledError:  # SIGTERM: everything was stopped on the way out
            return 143
    return 0


if __name__ == "__main__":
    sys.exit(main())
