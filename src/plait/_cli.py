"""The ``plait`` command. It uses only what the package exports to its users."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from ._command import CommandParser, add_map_command, add_run_command, map_command, run_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plait", description="Concurrent execution made effortless."
    )
    parser.add_argument("--version", action="version", version=f"plait {__version__}")
    # (A subcommand's bad command line exits 255, as GNU parallel's does.)
    commands = parser.add_subparsers(
        dest="subcommand", metavar="COMMAND", parser_class=CommandParser
    )
    commands.add_parser("demo", help="a short offline tour with timings (about 10 s)")
    add_run_command(commands)
    add_map_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # (Ctrl-C before a command handles it: as it starts, quietly)
        return 130


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and args.subcommand in ("run", "map"):  # (255, as GNU parallel's)
        print(f"plait {args.subcommand}: error: unrecognized arguments: {' '.join(unknown)}",
              file=sys.stderr)  # fmt: skip
        return 255
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.subcommand == "demo":
        from ._demo import main as demo

        return demo()
    if args.subcommand == "run":
        return run_command(args)
    if args.subcommand == "map":
        return map_command(args)
    parser.print_help(sys.stderr)
    return 2
