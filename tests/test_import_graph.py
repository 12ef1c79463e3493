"""The package's own import graph: no import cycles, and no import from a lower layer into a higher one.

Every module of ``tomodiff/`` is parsed with :mod:`ast`. An import counts wherever it sits: at module
level, inside a function (a function-level import that dodges a circle is still a circle), relative
or absolute. Three more kinds of edge are what Python runs too:

- ``from pkg.sub import x`` also runs ``pkg/__init__.py``, so it is an edge to ``pkg`` as well
  (unless the importer lives inside ``pkg``, whose ``__init__`` is already running);
- the lazy tables that packages hand to ``importlib.import_module`` (``priors._LAZY``,
  ``ct.backends._MODULES``, the command list of ``cli``) are edges to the modules they name;
- imports under ``if TYPE_CHECKING:`` never run and are left out.

A package ``__init__`` that re-exports its own submodules is therefore no cycle by itself; it becomes
one only when a submodule imports that ``__init__`` back (e.g. ``from tomodiff import ...`` from inside).
"""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import tomodiff

PACKAGE = Path(tomodiff.__file__).parent
ROOT = "tomodiff"

# Layer of each package/module prefix (longest prefix wins); a module may import only its own layer
# or lower ones. This is the order the code should have, which differs from DESIGN.md's "Layers"
# table in four places:
# - io sits low, just above ct, not beside phantoms below recon: recon writes its files through io
#   (io.atomic), and issue 23 wants geometry slicing in ct "so that io never needs recon";
# - phantoms sit below io: they need only numpy/torch, and io.volumes resolves "FAMILY:SEED" specs
#   through them;
# - the method registry (tomodiff.methods) is plain data that imports nothing, so every layer may
#   read it; it names its solvers as "module:function" strings, resolved by recon;
# - DESIGN.md has no place for training (conditional-prior training simulates FBP inputs, so above
#   recon), demos (above everything they show) or the root package (it lazily re-exports
#   sample_posterior, so a module inside importing ``tomodiff`` itself imports upward).
LAYERS = {
    "tomodiff._version": 0,
    "tomodiff.methods": 0,  # the method registry: plain data (solvers named as strings), read by all
    "tomodiff.operators": 1,
    "tomodiff.ct": 2,
    "tomodiff.render": 3,  # DESIGN.md's emission-absorption renderer: an operator beside ct
    "tomodiff.phantoms": 4,
    "tomodiff.io": 5,
    "tomodiff.priors": 6,
    "tomodiff.samplers": 7,
    "tomodiff.recon": 8,
    "tomodiff.training": 9,
    "tomodiff.demos": 10,
    "tomodiff.napari": 11,  # `tomodiff view` opens napari, so napari sits below commands
    "tomodiff.commands": 12,
    "tomodiff.cli": 13,
    "tomodiff.__main__": 14,
    ROOT: 14,  # the root __init__ only: every other module must match a longer prefix
}


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    file: str
    line: int
    in_function: bool
    via: str = ""  # why it is an edge when the import does not name dst itself

    def __str__(self):
        where = "in a function" if self.in_function else "module level"
        via = f", {self.via}" if self.via else ""
        return f"{self.src} -> {self.dst}  ({self.file}:{self.line}, {where}{via})"


def module_files() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = (ROOT, *path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = module_files()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _base(module: str, level: int) -> str:
    """The package that a relative import of ``level`` dots in ``module`` starts from."""
    parts = module.split(".") if _is_package(module) else module.split(".")[:-1]
    return ".".join(parts[: len(parts) - (level - 1)])


def _named_module(dotted: str) -> str | None:
    """The longest prefix of ``dotted`` that is a module of the package (None outside it)."""
    parts = dotted.split(".")
    for k in range(len(parts), 0, -1):
        if ".".join(parts[:k]) in MODULES:
            return ".".join(parts[:k])
    return None


def _targets(node: ast.Import | ast.ImportFrom, module: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [t for a in node.names if (t := _named_module(a.name))]
    base = _base(module, node.level) if node.level else ""
    head = ".".join(p for p in (base, node.module) if p)
    out = []
    for alias in node.names:  # `from pkg import sub` imports the submodule, else pkg itself
        t = _named_module(f"{head}.{alias.name}") or _named_module(head)
        if t and t not in out:
            out.append(t)
    return out


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, in_function: bool = False):
    """``(import node, in_function)`` for every import that can run, and every importlib call."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            for other in child.orelse:
                yield from _walk(other, in_function)
            continue
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, in_function
        elif (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute)
              and child.func.attr == "import_module"):
            yield child, in_function
        yield from _walk(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                  ast.Lambda)))


def _module_level_strings(tree: ast.Module) -> list[str]:
    """String constants in the module's top-level assignments (where lazy tables live)."""
    out = []
    for stmt in tree.body:
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
            out += [n.value for n in ast.walk(stmt.value) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    return out


def _lazy_targets(call: ast.Call, module: str, table: list[str]) -> list[str]:
    """Modules an ``importlib.import_module(...)`` call can load: a constant name, or the constant
    prefix of an f-string (``f"tomodiff.commands.{name}"``, ``f".{_LAZY[name]}"``) or a bare
    lookup (``_MODULES[name]``) completed by each string of the module's lazy tables."""
    if not call.args:
        return []
    arg = call.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        names = [arg.value]
    else:
        first = arg.values[0] if isinstance(arg, ast.JoinedStr) and arg.values else None
        prefix = first.value if isinstance(first, ast.Constant) else ""
        names = [prefix + s for s in table]
    out = []
    for name in names:
        if name.startswith("."):
            level = len(name) - len(name.lstrip("."))
            name = ".".join(p for p in (_base(module, level), name[level:]) if p)
        if name in MODULES and name not in out:
            out.append(name)
    return out


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:k]) for k in range(1, len(parts))]


def import_edges() -> list[Edge]:
    edges = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        table = _module_level_strings(tree)
        rel = f"tomodiff/{path.relative_to(PACKAGE).as_posix()}"
        for node, in_function in _walk(tree):
            if isinstance(node, ast.Call):
                targets, via = _lazy_targets(node, module, table), "importlib lazy table"
            else:
                targets, via = _targets(node, module), ""
            own = set(_ancestors(module)) | {module}
            for dst in targets:
                found = [(dst, via)] + [(pkg, f"runs {pkg}'s __init__") for pkg in _ancestors(dst)
                                        if pkg not in own]
                for target, why in found:
                    if target != module:
                        edges.setdefault((module, target), Edge(module, target, rel, node.lineno,
                                                                in_function, why))
    return list(edges.values())


EDGES = import_edges()


def layer(module: str) -> int | None:
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or (prefix != ROOT and module.startswith(prefix + ".")):
            return LAYERS[prefix]
    return None


def _components(graph: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(graph[w])))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def _shortest_cycle(graph: dict[str, list[str]], start: str, members: set[str]) -> list[str]:
    """The shortest chain ``start -> ... -> start`` inside one component (BFS)."""
    parent = {start: None}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in graph[v]:
            if w == start:
                chain = [v]
                while parent[chain[-1]] is not None:
                    chain.append(parent[chain[-1]])
                return chain[::-1] + [start]
            if w in members and w not in parent:
                parent[w] = v
                queue.append(w)
    raise AssertionError(f"{start} is in a component but on no cycle")


def import_cycles() -> list[list[Edge]]:
    """One shortest cycle through each module that lies on a cycle, without repeats."""
    graph = {m: [] for m in MODULES}
    by_pair = {}
    for e in EDGES:
        graph[e.src].append(e.dst)
        by_pair[e.src, e.dst] = e
    cycles, seen = [], set()
    for comp in _components(graph):
        for start in comp:
            chain = _shortest_cycle(graph, start, set(comp))[:-1]
            k = chain.index(min(chain))
            chain = chain[k:] + chain[:k]
            if tuple(chain) not in seen:
                seen.add(tuple(chain))
                cycles.append([by_pair[a, b] for a, b in zip(chain, chain[1:] + chain[:1])])
    return cycles


def test_graph_sees_every_kind_of_import():
    pairs = {(e.src, e.dst) for e in EDGES}
    assert ("tomodiff.ct.projector", "tomodiff.operators") in pairs  # module level, relative
    assert ("tomodiff.samplers.dds", "tomodiff.operators.solvers") in pairs  # absolute
    assert ("tomodiff.samplers.dds", "tomodiff.operators") in pairs  # runs operators/__init__
    assert ("tomodiff", "tomodiff.samplers") in pairs  # inside the root's __getattr__
    assert ("tomodiff.priors", "tomodiff.priors.registry") in pairs  # priors._LAZY
    assert ("tomodiff.ct.backends", "tomodiff.ct.backends.astra_backend") in pairs  # _MODULES
    assert ("tomodiff.cli", "tomodiff.commands.demo") in pairs  # f"tomodiff.commands.{name}"


def test_cycle_finder_on_a_known_graph():
    graph = {"a": ["b"], "b": ["c", "a"], "c": ["a"], "d": ["e"], "e": ["d"], "f": ["a"]}
    assert _components(graph) == [["a", "b", "c"], ["d", "e"]]
    assert _shortest_cycle(graph, "c", {"a", "b", "c"}) == ["c", "a", "b", "c"]


def test_every_module_has_a_layer():
    missing = [m for m in MODULES if layer(m) is None]
    assert not missing, f"modules without a layer (add their package to LAYERS): {missing}"


def test_no_import_cycles():
    cycles = import_cycles()
    text = "\n\n".join(f"{' -> '.join([c[0].src] + [e.dst for e in c])}\n" + "\n".join(f"    {e}" for e in c)
                       for c in cycles)
    assert not cycles, f"{len(cycles)} import cycle(s):\n\n{text}"


def test_no_upward_imports():
    up = sorted((e for e in EDGES if (layer(e.src) or 0) < (layer(e.dst) or 0)), key=lambda e: (e.file, e.line))
    text = "\n".join(f"    {e}  [layer {layer(e.src)} imports layer {layer(e.dst)}]" for e in up)
    assert not up, f"{len(up)} import(s) from a lower layer into a higher one:\n{text}"
