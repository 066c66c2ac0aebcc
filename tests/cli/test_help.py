"""`ugatit COMMAND --help`: every option explained, no empty defaults, and instant (no torch import)."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from ugatit.cli import SUBCOMMANDS, build_parser


def subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_subcommand_is_listed_once_in_order():
    assert list(subparsers()) == list(SUBCOMMANDS)


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_option_has_help_and_no_empty_default(command):
    parser = subparsers()[command]
    missing = [a.option_strings or a.dest for a in parser._actions if not a.help]
    assert not missing, f"{command}: options without help: {missing}"
    text = parser.format_help()
    assert "(default: None)" not in text and "(default: False)" not in text


def test_help_does_not_import_torch():
    code = (
        "import sys; from ugatit.cli import main\n"
        "try: main(['train', '--help'])\nexcept SystemExit: pass\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert out.strip().endswith("False")
