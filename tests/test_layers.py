"""The engine's shape: imports point down the layers, never in a circle, and modules stay small."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ENGINE = Path(__file__).parent.parent / "engine"
MAX_LINES = 650

# A layer may import from itself and from the layers below it, never from above.
LAYERS = {"model": 0, "store": 1, "canned": 2, "actors": 2, "api": 3}


def module_name(path: Path) -> str:
    parts = path.relative_to(ENGINE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def module_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports run when the module is imported (TYPE_CHECKING blocks and functions excepted)."""
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and not type_checking_only(node):
            todo.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            todo.extend(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                todo.extend(handler.body)


def engine_imports(path: Path, known: set[str]) -> set[str]:
    """The engine modules `path` imports (`from . import x` counts as importing `x`)."""
    name = module_name(path)
    package = name if is_package(path) else name.rpartition(".")[0]
    found: set[str] = set()
    for node in module_imports(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "engine")
            continue
        if node.level:
            base = package.split(".")
            base = base[: len(base) - node.level + 1]
            target = ".".join([*base, node.module] if node.module else base)
        else:
            target = node.module or ""
        if target.split(".")[0] != "engine":
            continue
        for alias in node.names:
            sub = f"{target}.{alias.name}"
            found.add(sub if sub in known else target)
    found.discard(name)
    return found


def graph() -> dict[str, set[str]]:
    paths = sorted(ENGINE.rglob("*.py"))
    known = {module_name(p) for p in paths}
    return {module_name(p): engine_imports(p, known) for p in paths}


def layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_no_import_circles() -> None:
    """No engine module imports, through any chain, itself."""
    edges = graph()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            pytest.fail("import circle: " + " -> ".join(cycle))
        if module in done:
            return
        for target in sorted(edges.get(module, ())):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(edges):
        visit(module, [])


def test_imports_point_down_the_layers() -> None:
    """api -> actors -> store -> model (canned beside actors): nothing imports a layer above it."""
    upward = []
    for module, targets in graph().items():
        here = layer(module)
        for target in targets:
            there = layer(target)
            same_folder = module.split(".")[:2] == target.split(".")[:2]
            if here is None or there is None or same_folder:
                continue
            if there >= here:
                upward.append(f"{module} -> {target}")
    assert [] == sorted(upward)


def test_every_engine_folder_is_a_known_layer() -> None:
    """A new folder under engine/ is given its place in LAYERS before it is used."""
    folders = {p.name for p in ENGINE.iterdir() if (p / "__init__.py").exists()}
    assert set(LAYERS) == folders


def test_no_module_is_too_long() -> None:
    """Every engine module has at most 650 lines: one concern each."""
    long = {
        str(p.relative_to(ENGINE.parent)): n
        for p in sorted(ENGINE.rglob("*.py"))
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert {} == long
