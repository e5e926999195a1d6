"""``vpd`` command line: thin wrappers over the library, one module per subcommand in ``vpd.commands``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from vpd import __version__

COMMANDS = ("train", "eval", "predict", "convert", "export", "serve", "demo")


class _Parser(argparse.ArgumentParser):
    """argparse with the error policy of every vpd command: one line naming the problem, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vpd", description="Visual perception with diffusion models (VPD).")
    parser.add_argument("--version", action="version", version=f"vpd {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"vpd.commands.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point. User errors (bad files, arguments, configs) end with one line on stderr and exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("vpd: interrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, NotADirectoryError, ValueError, ImportError, OSError) as err:
        print(f"vpd {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
