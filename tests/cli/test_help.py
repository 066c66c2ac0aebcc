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


def test_train_help_takes_its_defaults_from_the_config(monkeypatch):
    """The help of `ugatit train` states the config's defaults, never copies of them: another default in
    the dataclasses is another help."""
    from ugatit.cli import _types
    from ugatit.config import Config, OptimConfig, TrainConfig

    def help_of(flag: str) -> str:
        action = next(a for a in subparsers()["train"]._actions if flag in a.option_strings)
        return action.help

    assert help_of("--lr") == "Adam learning rate (default 1e-4)"
    assert help_of("--log-every") == "log.jsonl/TensorBoard period (default 10)"
    assert help_of("--iters") == "total iterations (paper: 1000000)"
    assert help_of("--light") == "the light model (default: off, the full model)"
    monkeypatch.setattr(
        _types, "Config", lambda: Config(optim=OptimConfig(lr=3e-4, iterations=5), train=TrainConfig(log_every=7))
    )
    assert help_of("--lr") == "Adam learning rate (default 3e-4)"
    assert help_of("--log-every") == "log.jsonl/TensorBoard period (default 7)"
    assert help_of("--iters") == "total iterations (paper: 5)"
