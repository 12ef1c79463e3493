"""benchmarks/ is a package of scripts that import tomodiff as any user would: no ``sys.path``
edits, no import circles among its modules, and every module imports (``python -m benchmarks.NAME``)."""

import ast
import importlib
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
MODULES = sorted(p.stem for p in BENCHMARKS.glob("*.py") if p.stem != "__init__")


def _siblings(name: str) -> set[str]:
    """The benchmarks modules that ``name`` imports (relative, or absolute as ``benchmarks.X``)."""
    out = set()
    for node in ast.walk(ast.parse((BENCHMARKS / f"{name}.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level == 1 or mod.startswith("benchmarks"):
                mod = mod.removeprefix("benchmarks").lstrip(".")
                out |= {mod.split(".")[0]} if mod else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("benchmarks.")}
    return out & set(MODULES)


def test_no_sys_path_edits():
    edits = [p.name for p in BENCHMARKS.glob("*.py") if "sys.path" in p.read_text(encoding="utf-8")]
    assert not edits, f"{edits} edit sys.path: import siblings relatively and run as python -m benchmarks.NAME"


def test_no_import_circles():
    graph = {m: _siblings(m) for m in MODULES}
    done, path = set(), []

    def visit(m):
        if m in path:
            raise AssertionError(f"import circle in benchmarks/: {' -> '.join(path[path.index(m):] + [m])}")
        if m not in done:
            path.append(m)
            for n in sorted(graph[m]):
                visit(n)
            path.pop()
            done.add(m)

    for m in MODULES:
        visit(m)


@pytest.mark.parametrize("name", MODULES)
def test_every_module_imports(name):
    importlib.import_module(f"benchmarks.{name}")
