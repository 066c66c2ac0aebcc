"""The README's Python API example runs as written, its first lines give the two commands, and the
architecture page names modules that exist."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_python_api_example_runs(tmp_path, monkeypatch, capsys):
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "tensor(" in out and "(120, 80)" in out
    assert (tmp_path / "official_layout.pt").is_file()
    from PIL import Image

    assert Image.open(tmp_path / "translated.png").size == (120, 80)
    assert Image.open(tmp_path / "attention.png").size == (120, 80)


def test_first_lines_give_the_demo_and_the_test_command():
    commands = README.read_text().split("```bash\n", 1)[1].split("```", 1)[0].strip().splitlines()
    assert commands[0].endswith("ugatit demo")
    assert commands[1].endswith("python -m pytest -q")
    assert "python -m pytest -q" in (README.parent / ".ci" / "run").read_text()


def test_architecture_page_matches_the_package():
    """Every `module.py` and `folder/` docs/architecture.md names in its folder table exists in src/ugatit."""
    page = (README.parent / "docs" / "architecture.md").read_text()
    assert "docs/architecture.md" in README.read_text()
    package = README.parent / "src" / "ugatit"
    table = page.split("## The folders", 1)[1].split("## What flows where", 1)[0]
    named = set(re.findall(r"`((?:[a-z_]+/)?[a-z_]+\.py|[a-z_]+/)`", table))
    assert len(named) > 20
    missing = [name for name in named if not (package / name).exists() and not any(package.glob(f"*/{name}"))]
    assert not missing, missing
    # and the other way round: every subpackage of src/ugatit is on the page
    folders = {p.name for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert {f for f in folders if f"`{f}/" not in page} == set()
