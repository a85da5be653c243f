"""The `holmbot` command line: `holmbot sandbox`, `holmbot console`, ..."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `holmbot` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "sandbox":
        from sandbox.cluster import run_until_stopped

        asyncio.run(run_until_stopped(args.state_dir, args.speed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
