"""The gateway's import graph (docs/architecture.md): layers, and no cycle.

Pure: the source files are parsed (the standard library's `ast`), nothing of
the gateway is imported. Every import counts, a function-level one too.

Layers, lowest first; a module may import its own layer's modules (without a
cycle) and the layers below, never one above:

1. core: `chalicelib/grip`, pure; imports nothing of chalicelib but itself.
2. adapters: `chalicelib/aws`, the backend's HTTP call, settings, secrets, the
   container's adapters (`services`), metric lines out (`metrics`).
3. executor: carries effects out (`executor`), and the steps that read input
   through the adapters for the entry points (a client's envelope frames, a
   backend's upload refs, a channel's history for a `Join`).
4. entry points: one module per kind of event (a WebSocket route, the worker,
   the ordered forwarder, the keep-alive scheduler, the control routes). They
   never import each other: only `app.py` wires them.
5. `app.py`.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

LAYERS: dict[str, int] = {
    "chalicelib.grip": 1,
    "chalicelib.aws": 2,
    "chalicelib.backend": 2,
    "chalicelib.settings": 2,
    "chalicelib.secrets": 2,
    "chalicelib.lazy": 2,
    "chalicelib.metrics": 2,
    "chalicelib.services": 2,
    "chalicelib.executor": 3,
    "chalicelib.outgoing": 3,
    "chalicelib.farewell": 3,
    "chalicelib.transfers": 3,
    "chalicelib.uploads": 3,
    "chalicelib.resume": 3,
    "chalicelib.handlers": 4,
    "chalicelib.ordered": 4,
    "chalicelib.fanout": 4,
    "chalicelib.keepalive": 4,
    "chalicelib.control": 4,
    "app": 5,
}
ENTRY = 4


def _modules() -> dict[str, Path]:
    found = {"app": ROOT / "app.py"}
    for path in sorted((ROOT / "chalicelib").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _package(name: str) -> str:
    path = MODULES[name]
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _ours(candidate: str) -> str | None:
    """The module of ours `candidate` names (a name imported from a package is
    the package), or None if it is not ours."""
    while candidate:
        if candidate in MODULES:
            return candidate
        candidate = candidate.rpartition(".")[0]
    return None


def imports_of(name: str) -> set[str]:
    """The modules of ours that module `name` imports, anywhere in it (and those
    it loads through `chalicelib.lazy`)."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package(name)
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            targets = [f"{base}.{alias.name}" for alias in node.names]
        elif _lazy(node):  # app.py's lazy("chalicelib.control"): an import at first use
            assert isinstance(node, ast.Call) and isinstance(node.args[0], ast.Constant)
            targets = [str(node.args[0].value)]
        else:
            continue
        for target in targets:
            ours = _ours(target)
            if ours is not None and ours != name:
                found.add(ours)
    return found


def _lazy(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "lazy"
        and len(node.args) == 1
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    )


GRAPH = {name: imports_of(name) for name in MODULES}


def layer(name: str) -> int | None:
    for prefix, number in LAYERS.items():
        if name == prefix or name.startswith(prefix + "."):
            return number
    return None


def test_every_module_has_a_layer() -> None:
    assert [m for m in MODULES if layer(m) is None and m != "chalicelib"] == []


def test_no_import_goes_up_a_layer() -> None:
    upward = [
        (name, target)
        for name, targets in GRAPH.items()
        for target in targets
        if target != "chalicelib" and (layer(target) or 0) > (layer(name) or 0)
    ]
    assert upward == []


def test_the_core_imports_nothing_of_chalicelib_but_itself() -> None:
    outside = [
        (name, target)
        for name, targets in GRAPH.items()
        if layer(name) == 1
        for target in targets
        if layer(target) != 1
    ]
    assert outside == []


def test_entry_points_do_not_import_each_other() -> None:
    siblings = [
        (name, target)
        for name, targets in GRAPH.items()
        if layer(name) == ENTRY
        for target in targets
        if layer(target) == ENTRY
    ]
    assert siblings == []


def test_the_import_graph_has_no_cycle() -> None:
    done: set[str] = set()
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        if name in path:
            return path[path.index(name) :] + [name]
        if name in done:
            return None
        path.append(name)
        for target in sorted(GRAPH[name]):
            cycle = visit(target)
            if cycle is not None:
                return cycle
        path.pop()
        done.add(name)
        return None

    cycles = [c for c in (visit(name) for name in sorted(GRAPH)) if c is not None]
    assert cycles == []


def test_the_checks_see_real_imports() -> None:
    """The parser finds what the modules are known to import, a relative import of
    a package's module and a function-level one included."""
    assert "chalicelib.executor" in GRAPH["chalicelib.handlers"]
    assert "chalicelib.grip.codec" in GRAPH["chalicelib.handlers"]
    assert "chalicelib.aws.queue" in GRAPH["chalicelib.executor"]
    assert "chalicelib.grip.publish" in GRAPH["chalicelib.control"]  # inside a function
    assert {"chalicelib.handlers", "chalicelib.control"} <= GRAPH["app"]
