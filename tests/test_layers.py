"""The package's imports run one way, down: no circle, and no arrow back up a floor.

Every import counts, those made for annotations only (under TYPE_CHECKING) and
inside functions too: an arrow a reader follows is an arrow.  The floors, from
the bottom: shared leaves; the codec; the stores; the server; the server embedded
in another program; the libraries (client, worker, admin); the cluster; the
console; the sync facades and the python-gearman layer; the command line and
the pytest plugin.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import geartrain

ROOT = Path(geartrain.__file__).parent

FLOORS: list[tuple[str, ...]] = [
    (
        "__about__",
        "address",
        "blank_bytes",
        "codecs",
        "cron",
        "durations",
        "errors",
        "priority",
        "readable",
        "retry",
        "tracing",
    ),
    ("protocol", "admin_answers", "extensions"),
    ("store",),
    ("server",),
    ("embedded",),
    (
        "connection",
        "kept_results",
        "client_job",
        "links",
        "worker_job",
        "admin",
        "client",
        "worker",
    ),
    ("cluster",),
    ("console",),
    ("sync", "compat"),
    ("cli", "__main__", "__init__", "testing"),
]
"""Each top-level module or package of geartrain, by floor, bottom first."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def imports(path: Path, name: str) -> set[str]:
    """The geartrain modules ``path`` (module ``name``) imports, as module names."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("geartrain."):
                    found.add(alias.name.removeprefix("geartrain."))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("geartrain"):
                target = node.module.removeprefix("geartrain").lstrip(".")
            else:
                continue
            for alias in node.names:  # `from . import x` may name a module
                sub = f"{target}.{alias.name}" if target else alias.name
                found.add(
                    sub
                    if (ROOT / Path(*sub.split("."))).exists()
                    or (ROOT / (sub.replace(".", "/") + ".py")).exists()
                    else target
                )
    return {m for m in found if m and m != name}


@functools.cache
def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    return {
        name: {m for m in imports(path, name) if m in modules} for name, path in modules.items()
    }


def floor(module: str) -> int:
    top = module.split(".")[0] or "__init__"
    return next(i for i, names in enumerate(FLOORS) if top in names)


def test_every_module_has_a_floor() -> None:
    for module in graph():
        floor(module)


def test_no_import_runs_back_up_a_floor() -> None:
    up = sorted(
        f"{a} -> {b}" for a, targets in graph().items() for b in targets if floor(b) > floor(a)
    )
    assert not up, up


def test_no_circles() -> None:
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    assert not circles, circles
