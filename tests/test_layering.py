"""The package's layering, read from the source (lazy imports inside functions count too: a cycle broken at run
time by a lazy import still ties two modules into one layer):

- no module of python/fusedscore imports, directly or through others, a module that imports it back;
- no module imports another module's private (``_x``) names: what modules share is public where it lives;
- the commands sit on top: no module imports ``fusedscore.cli_rerank`` (``fusedscore.cli`` loads it by name).
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG_ROOT = Path(__file__).resolve().parent.parent / "python"
PKG = "fusedscore"


def _modules() -> dict[str, Path]:
    mods = {}
    for path in sorted((PKG_ROOT / PKG).rglob("*.py")):
        name = ".".join(path.relative_to(PKG_ROOT).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = path
    return mods


def _targets(mods: dict[str, Path], mod: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The package modules an import statement in ``mod`` loads (``from . import x`` -> the submodule x when x
    is one, else the package it names)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == PKG]
    if node.level:
        parts = mod.split(".") if mods[mod].name == "__init__.py" else mod.split(".")[:-1]
        base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    if base.split(".")[0] != PKG:
        return []
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for t in _targets(mods, mod, node):
                    while t not in mods and "." in t:  # `import fusedscore.x.y` loads fusedscore.x.y
                        t = t.rsplit(".", 1)[0]
                    if t in mods and t != mod:
                        deps.add(t)
        graph[mod] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
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
                        found.append(sorted(comp))
    return found


def private_imports() -> list[str]:
    """``from <package module> import _name`` where ``_name`` is not itself a module: a private name shared."""
    mods = _modules()
    found = []
    for mod, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                for alias, target in zip(node.names, _targets(mods, mod, node)):
                    if alias.name.startswith("_") and not target.endswith("." + alias.name):
                        found.append(f"{mod}:{node.lineno} imports {alias.name} from {target}")
    return found


def test_the_walker_sees_lazy_imports_and_cycles():
    # the checker itself, on a graph it must flag: a -> b at module level, b -> a inside a function
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    graph = import_graph()
    assert "fusedscore.ops" in graph["fusedscore"]  # the package re-exports ops
    assert "fusedscore._dispatch" in graph["fusedscore.ops"]


def test_package_has_no_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles (each a set of modules that import one another): " + "; ".join(
        " <-> ".join(c) for c in found)


def test_no_private_name_is_imported_across_modules():
    found = private_imports()
    assert not found, "private names imported across modules: " + "; ".join(found)


def test_no_module_imports_the_rerank_command():
    # the Ray runner imported cli_rerank's helpers (lazily) while cli_rerank imported the Ray runner; rows now
    # live in fusedscore.rows, under both
    importers = [m for m, deps in import_graph().items() if "fusedscore.cli_rerank" in deps]
    assert importers == []
