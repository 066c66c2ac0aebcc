"""The README's Python API example runs as written, and its first lines give the two commands."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_python_api_example_runs(tmp_path, monkeypatch, capsys):
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    assert "tensor(" in capsys.readouterr().out
    assert (tmp_path / "official_layout.pt").is_file()


def test_first_lines_give_the_demo_and_the_test_command():
    commands = README.read_text().split("```bash\n", 1)[1].split("```", 1)[0].strip().splitlines()
    assert commands[0].endswith("ugatit demo")
    assert commands[1].endswith("python -m pytest -q")
    assert "python -m pytest -q" in (README.parent / ".ci" / "run").read_text()
