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
    test_command = "python -m pytest -q -n auto --dist loadscope"
    assert commands[1].endswith(test_command)
    assert test_command in (README.parent / ".ci" / "run").read_text()


def architecture_names(page: str) -> list[tuple[str, str]]:
    """(row, path under src/ugatit) for every `module.py` and `folder/` the folder table of
    docs/architecture.md names. A bare `name.py` in a row whose first cell is one folder (`metrics/`) lies
    in that folder; any other is a path from the package root, written in full."""
    table = page.split("## The folders", 1)[1].split("## What flows where", 1)[0]
    found = []
    for row in table.splitlines():
        cells = row.split("|")
        if not row.startswith("|") or len(cells) < 4 or set(cells[1].strip()) <= set("-"):
            continue
        first = re.findall(r"`([^`]+)`", cells[1])
        folder = first[0] if len(first) == 1 and first[0].endswith("/") else ""
        for name in re.findall(r"`((?:[a-z_][a-z0-9_]*/)*[a-z_][a-z0-9_]*\.py|[a-z_][a-z0-9_]*/)`", row):
            found.append((cells[1].strip(), name if "/" in name or not folder else folder + name))
    return found


def test_architecture_page_matches_the_package():
    """Every `module.py` and `folder/` docs/architecture.md names in its folder table exists in src/ugatit,
    at exactly the place the row says (a module of another folder with the same name does not count)."""
    page = (README.parent / "docs" / "architecture.md").read_text()
    assert "docs/architecture.md" in README.read_text()
    package = README.parent / "src" / "ugatit"
    named = architecture_names(page)
    assert len(named) > 20
    missing = [(row, path) for row, path in named if not (package / path).exists()]
    assert not missing, missing
    # and the other way round: every subpackage of src/ugatit is on the page, and every module but the
    # subcommands (the cli/ row says: one module per subcommand, each named after its command)
    folders = {p.name for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert {f for f in folders if f"`{f}/" not in page} == set()
    modules = {
        p.relative_to(package).as_posix()
        for p in package.rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py") and p.parent.name != "cli"
    }
    assert modules - {path for _, path in named} == set()


def test_architecture_names_are_resolved_exactly():
    """The reading above: a module named in the wrong folder's row, or without its folder outside one, is
    missing, even though a module of that name exists elsewhere in the package."""
    rows = (
        "## The folders\n| folder / module | what |\n|---|---|\n"
        "| `metrics/` | `kid.py` (estimators), `device.py` (the resolver) |\n"
        "| `utils/` | `crc32c.py` (checksums), `crc64.py` (none such) |\n"
        "| `training/fast.py` | the graph; `step.py` the step |\n"
        "## What flows where"
    )
    package = README.parent / "src" / "ugatit"
    named = dict((path, (package / path).exists()) for _, path in architecture_names(rows))
    assert named == {
        "metrics/": True,
        "metrics/kid.py": True,
        "metrics/device.py": False,
        "utils/": True,
        "utils/crc32c.py": True,  # a name with digits is read too
        "utils/crc64.py": False,
        "training/fast.py": True,
        "step.py": False,
    }
