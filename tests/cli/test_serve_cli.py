"""`ugatit serve`'s command line: mistakes are one line and exit 2, before anything heavy is loaded.
The app itself is tested in tests/serve/."""

from __future__ import annotations

import os
import sys

import pytest

from ugatit.cli import main


def test_missing_checkpoint_is_one_line(tmp_path, capsys):
    assert main(["serve", "--checkpoint", str(tmp_path / "nope.safetensors")]) == 2
    assert capsys.readouterr().err == f"ugatit serve: error: checkpoint not found: {tmp_path / 'nope.safetensors'}\n"


def test_without_gradio_says_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio now raises ImportError
    monkeypatch.delitem(sys.modules, "ugatit.serve.app", raising=False)
    before = dict(os.environ)
    assert main(["serve", "--checkpoint", str(tmp_path)]) == 2
    assert capsys.readouterr().err == 'ugatit serve: error: the web app needs Gradio: pip install "ugatit[serve]"\n'
    assert dict(os.environ) == before  # its offline settings are undone


@pytest.mark.parametrize("port", ["0", "65536", "http"])
def test_bad_port_is_a_usage_error(port, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--checkpoint", "x", "--port", port])
    assert exited.value.code == 2 and "--port" in capsys.readouterr().err
