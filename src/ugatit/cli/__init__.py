"""The `ugatit` command. Each module in this package is one subcommand.

A subcommand module defines `HELP` (one line), `add_arguments(parser)`, `run(args) -> int` and, where
library errors name config keys or arguments, `FLAGS` (library term -> flag). It imports heavy libraries
inside `run` so that `ugatit --help` stays instant. The library never imports this package. A
`UserError` becomes one line on stderr, its terms reworded as flags, and exit code 2; anything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

from ..errors import UserError, reword

#: Exit status of a command a signal stopped after it saved its work: the shell's, 128 + the signal's number.
SIGNAL_EXIT = {name: 128 + signal.Signals[name].value for name in ("SIGINT", "SIGTERM")}

#: The subcommands, in the order `ugatit --help` lists them; each is the module cli/<name>.py.
SUBCOMMANDS = (
    "demo",
    "train",
    "translate",
    "serve",
    "eval",
    "ablate",
    "inspect",
    "convert",
    "export",
    "push",
    "make-dataset",
    "check-data",
    "bench",
)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default where it says something: not for required options, flags that are
    off unless given, or options without a default."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required or action.default in (None, False, argparse.SUPPRESS):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="ugatit",
        description="U-GAT-IT unsupervised image-to-image translation: train, translate, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"ugatit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=module.__doc__,
            formatter_class=HelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run, _flags=getattr(module, "FLAGS", {}))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args._argv = argv  # what a command that relaunches itself (train --nproc) passes on
    # Under torchrun every rank runs this: rank 0 speaks for the job, the others name themselves.
    rank = os.environ.get("RANK") if int(os.environ.get("WORLD_SIZE", "1")) > 1 else None
    name = f"ugatit {args.command}" + (f" [rank {rank}]" if rank not in (None, "0") else "")
    try:
        return int(args._run(args) or 0)
    except UserError as exc:
        print(f"{name}: error: {reword(str(exc), args._flags)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return SIGNAL_EXIT["SIGINT"]


if __name__ == "__main__":  # python -m ugatit.cli
    sys.exit(main())
