"""The house's arrows (docs/architecture.md): the library never imports `ugatit.cli`, and no two modules
import each other, however far round. Read from the source with `ast`, so an import inside a function
or under `TYPE_CHECKING` counts as much as one at the top of a file.

A package's `__init__` is a module like any other. Importing `a.b.c` from outside package `a.b` runs
`a/b/__init__.py` first, so such an import is an arrow to `a.b` too: `evaluation` importing
`demo.truth` while `demo/__init__` imports `demo.run`, which imports `evaluation`, is a circle. A module
importing a sibling inside its own package adds no arrow to that package (its `__init__` is already
running or done).
"""

from __future__ import annotations

import ast
import shutil
import textwrap
from pathlib import Path

import pytest

import ugatit

PACKAGE = Path(ugatit.__file__).parent
#: The one module outside the CLI that may import it: `python -m ugatit` is the CLI.
ENTRY_POINTS = {"ugatit.__main__"}


def module_files(root: Path) -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, is a package's __init__) for every .py file of the package at `root`."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        modules[".".join(parts)] = (path, is_package)
    return modules


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports (see the module docstring for the rule)."""
    modules = module_files(root)

    def known(name: str) -> str | None:
        """The module `name` names, or the deepest package above it (`pkg.mod.attr` -> `pkg.mod`)."""
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(t for alias in node.names if (t := known(alias.name)))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    here = name.split(".") if is_package else name.split(".")[:-1]
                    base = ".".join(here[: len(here) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                for alias in node.names:
                    target = f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else known(base)
                    if target:
                        targets.add(target)
        arrows = set(targets)
        for target in targets:  # the packages entered from outside, whose __init__ runs first
            parts = target.split(".")
            for i in range(2, len(parts)):
                package = ".".join(parts[:i])
                if not (name == package or name.startswith(package + ".")):
                    arrows.add(package)
        arrows.discard(name)
        graph[name] = arrows
    return graph


def arrows_into_cli(graph: dict[str, set[str]], package: str) -> list[str]:
    cli = f"{package}.cli"

    def in_cli(module: str) -> bool:
        return module == cli or module.startswith(cli + ".")

    return sorted(
        f"{source} -> {target}"
        for source, targets in graph.items()
        if not in_cli(source) and source not in ENTRY_POINTS
        for target in targets
        if in_cli(target)
    )


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph.get(successor, ())))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return sorted(found)


def test_the_library_never_imports_the_cli():
    assert arrows_into_cli(import_graph(PACKAGE), "ugatit") == []


def test_no_module_imports_itself_round_a_circle():
    assert cycles(import_graph(PACKAGE)) == []


def test_the_walk_sees_the_whole_package():
    graph = import_graph(PACKAGE)
    # Spot checks that the walk reads relative, lazy and package imports as the arrows they are.
    assert "ugatit.nn.model" in graph["ugatit.weights.export"]
    assert "ugatit.cli" in graph["ugatit.__main__"]
    assert "ugatit.viz.rho" in graph["ugatit.training.run_dir"]  # inside a function
    assert {"ugatit.viz", "ugatit.viz.rho"} <= graph["ugatit.training.run_dir"]  # entering viz runs its __init__
    assert "ugatit.training" in graph["ugatit.demo.run"]  # a name from the package's __init__
    assert len(graph) > 100


def write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / next(iter(files)).split("/")[0]


@pytest.mark.parametrize(
    "line",
    [
        "from .cli import reword",  # relative, at the top
        "from pkg.cli.tool import run",  # absolute, a module of the CLI
        "def f():\n    import pkg.cli\n",  # lazy
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .cli import tool\n",
    ],
)
def test_an_arrow_into_the_cli_is_caught(tmp_path, line):
    root = write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/cli/__init__.py": "from ..lib import work\n",
            "pkg/cli/tool.py": "from pkg.lib import work\n",
            "pkg/lib.py": line,
        },
    )
    assert arrows_into_cli(import_graph(root), "pkg") != []
    # The CLI importing the library, and the library's neighbours, are arrows the right way.
    (root / "lib.py").write_text("import os\n")
    assert arrows_into_cli(import_graph(root), "pkg") == []


def test_circles_are_caught(tmp_path):
    root = write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from . import b\n",
            "pkg/b.py": "def f():\n    from .c import g\n",  # lazy, still an arrow
            "pkg/c.py": "import pkg.a\n",
            # a program package whose __init__ imports its runner, which imports a module that reaches back
            # into another module of the package: a circle through the package's __init__
            "pkg/demo/__init__.py": "from .run import main\n",
            "pkg/demo/run.py": "from ..evaluation import score\nfrom .truth import T\n",
            "pkg/demo/truth.py": "T = 1\n",
            "pkg/evaluation.py": "def score():\n    from .demo.truth import T\n",
            "pkg/ok.py": "from .demo import truth\n",
        },
    )
    assert cycles(import_graph(root)) == [
        ["pkg.a", "pkg.b", "pkg.c"],
        ["pkg.demo", "pkg.demo.run", "pkg.evaluation"],
    ]
    # A module importing its sibling inside its own package is no circle.
    (root / "evaluation.py").write_text("SCORE = 1\n")
    (root / "c.py").write_text("")
    assert cycles(import_graph(root)) == []


def test_a_broken_copy_of_ugatit_is_caught(tmp_path):
    """The real package, copied, with one arrow into the CLI and one circle added."""
    copy = tmp_path / "ugatit"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert arrows_into_cli(import_graph(copy), "ugatit") == []
    assert cycles(import_graph(copy)) == []
    with (copy / "nn" / "layers.py").open("a") as f:
        f.write("\n\ndef _late():\n    from ..cli._types import device_type\n")
    with (copy / "errors.py").open("a") as f:
        f.write("\nfrom .config import Config\n")  # config imports errors
    graph = import_graph(copy)
    # importing ugatit.cli._types from outside the CLI runs ugatit/cli/__init__.py first: two arrows
    assert arrows_into_cli(graph, "ugatit") == [
        "ugatit.nn.layers -> ugatit.cli",
        "ugatit.nn.layers -> ugatit.cli._types",
    ]
    assert any({"ugatit.config", "ugatit.errors"} <= set(circle) for circle in cycles(graph))
