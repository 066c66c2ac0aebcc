"""The `ugatit` command. Each module in this package is one subcommand.

A subcommand module defines `HELP` (one line), `add_arguments(parser)` and `run(args) -> int`, and
imports heavy libraries inside `run` so that `ugatit --help` stays instant. The library never imports
this package. A `UserError` becomes one line on stderr and exit code 2; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from ..errors import UserError


def _subcommands() -> list[tuple[str, object]]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "add_arguments") and hasattr(module, "run"):
            found.append((info.name.replace("_", "-"), module))
    order = {name: i for i, name in enumerate(["demo", "train", "translate", "eval", "make-dataset"])}
    return sorted(found, key=lambda item: (order.get(item[0], len(order)), item[0]))


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="ugatit",
        description="U-GAT-IT unsupervised image-to-image translation: train, translate, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"ugatit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in _subcommands():
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=module.__doc__,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except UserError as exc:
        print(f"ugatit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ugatit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # python -m ugatit.cli
    sys.exit(main())
