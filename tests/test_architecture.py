"""The import graph keeps each module in its room: no circles, the backend never imports the workers, the kernel
imports no domain, and ``workers/`` is Celery wiring only. Every import counts: inside functions and under
``TYPE_CHECKING`` too."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("backend", "workers", "notifications", "geo")
#: The kernel every domain builds on; it may import only itself and the language helpers.
KERNEL = frozenset({"backend.db", "backend.errors", "backend.config", "backend.middleware"})
KERNEL_MAY_IMPORT = KERNEL | {"backend.i18n"}
WORKER_MODULE_MAX_LINES = 150


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    """Every project module by dotted name (migrations are data, not code others import)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                found[_module_name(path)] = path
    return found


def _imported(node: ast.AST, known: dict[str, Path]) -> Iterator[str]:
    """The project modules one import statement names (``from a import b`` names a.b when b is a module)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            name = alias.name
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                yield name
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        for alias in node.names:
            full = f"{node.module}.{alias.name}"
            if full in known:
                yield full
            elif node.module in known:
                yield node.module


@cache
def graph() -> dict[str, frozenset[str]]:
    """Module → the project modules it imports anywhere in its body."""
    known = modules()
    edges: dict[str, frozenset[str]] = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges[name] = frozenset(t for node in ast.walk(tree) for t in _imported(node, known) if t != name)
    return edges


def _cycles(edges: dict[str, frozenset[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_walk_sees_the_project() -> None:
    edges = graph()
    assert {"backend.db", "backend.outbox.relay", "workers.celery_app", "geo.routing"} <= set(edges)
    assert "backend.notices.handlers" in edges["backend.outbox.relay"]
    assert "backend.config" in edges["backend.db"]


def test_the_cycle_finder_finds_a_circle() -> None:
    edges = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": frozenset({"a"})}
    assert _cycles(edges) == [["a", "b", "c"]]
    assert _cycles({"a": frozenset({"b"}), "b": frozenset()}) == []


def test_no_circle_between_modules() -> None:
    assert _cycles(graph()) == []


def test_the_backend_never_imports_the_workers() -> None:
    offenders = {
        (name, target)
        for name, targets in graph().items()
        if name.startswith("backend")
        for target in targets
        if target == "workers" or target.startswith("workers.")
    }
    assert offenders == set()


def test_the_kernel_imports_no_domain() -> None:
    edges = graph()
    offenders = {
        (name, target)
        for name in KERNEL
        for target in edges[name]
        if target.startswith("backend") and target not in KERNEL_MAY_IMPORT
    }
    assert offenders == set()


def test_workers_hold_only_celery_wiring() -> None:
    long = {
        path.name: lines
        for path in (ROOT / "workers").glob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > WORKER_MODULE_MAX_LINES
    }
    assert long == {}
