"""The shape of engine/ and protocol/: imports point down the layers, never in a circle, and
modules stay small."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ENGINE = Path(__file__).parent.parent / "engine"
MAX_LINES = 600

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


def module_imports(
    tree: ast.Module, *, type_checking: bool = False
) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports run when the module is imported (functions excepted; TYPE_CHECKING blocks too,
    unless ``type_checking``)."""
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and (type_checking or not type_checking_only(node)):
            todo.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            todo.extend(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                todo.extend(handler.body)


def imports(
    path: Path, known: set[str], *, top: str | None = "engine", type_checking: bool = False
) -> set[str]:
    """The modules of package `top` (of any package if None) that `path` imports (`from . import
    x` counts as importing `x`)."""
    name = module_name(path)
    package = name if is_package(path) else name.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in module_imports(tree, type_checking=type_checking):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if top in (None, a.name.split(".")[0]))
            continue
        if node.level:
            base = package.split(".")
            base = base[: len(base) - node.level + 1]
            target = ".".join([*base, node.module] if node.module else base)
        else:
            target = node.module or ""
        if top not in (None, target.split(".")[0]):
            continue
        for alias in node.names:
            sub = f"{target}.{alias.name}"
            found.add(sub if sub in known else target)
    found.discard(name)
    return found


def graph(
    root: Path = ENGINE, *, top: str | None = "engine", type_checking: bool = False
) -> dict[str, set[str]]:
    paths = sorted(root.rglob("*.py"))
    known = {module_name(p) for p in paths}
    return {module_name(p): imports(p, known, top=top, type_checking=type_checking) for p in paths}


def circles(edges: dict[str, set[str]]) -> list[str]:
    """Every import circle found walking `edges` (each as "a -> b -> a")."""
    found: list[str] = []
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            found.append(" -> ".join([*path[path.index(module) :], module]))
            return
        if module in done:
            return
        for target in sorted(edges.get(module, ())):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(edges):
        visit(module, [])
    return found


def too_long(root: Path) -> dict[str, int]:
    """The modules under `root` longer than MAX_LINES, with their lengths."""
    return {
        str(p.relative_to(root.parent)): n
        for p in sorted(root.rglob("*.py"))
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }


def layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_no_import_circles() -> None:
    """No engine module imports, through any chain, itself."""
    assert [] == circles(graph())


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
    """Every engine module has at most 600 lines: one concern each."""
    assert {} == too_long(ENGINE)


# -- protocol/ -----------------------------------------------------------------------------------

PROTOCOL = ENGINE.parent / "protocol"

# Within protocol: cli -> server -> wire, and client -> wire. The wire does no I/O: it imports
# neither trio nor a WebSocket library (DESIGN.md, "Layout"). Nothing imports the command line.
PROTOCOL_BANS = {
    "protocol.wire": ("protocol", "trio", "trio_websocket", "websockets"),
    "protocol.client": ("protocol.server", "protocol.cli"),
    "protocol.server": ("protocol.cli", "protocol.client"),
}
PROTOCOL_ALLOWED = {"protocol.wire": ("protocol.wire",)}  # exceptions to the bans above


def protocol_graph() -> dict[str, set[str]]:
    """Every import of every protocol module, TYPE_CHECKING ones included."""
    return graph(PROTOCOL, top=None, type_checking=True)


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_protocol_imports_point_down() -> None:
    """The wire imports no other part of protocol and no I/O library; the client and the server
    do not import each other, nor the command line."""
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in protocol_graph().items()
        for layer, banned in PROTOCOL_BANS.items()
        if within(module, layer)
        for target in targets
        if any(within(target, ban) for ban in banned)
        and not any(within(target, ok) for ok in PROTOCOL_ALLOWED.get(layer, ()))
    )
    assert [] == upward


def test_engine_never_imports_protocol() -> None:
    """protocol/ uses the engine; the engine knows nothing of the wire."""
    assert [] == sorted(
        f"{module} -> {target}"
        for module, targets in graph(top="protocol", type_checking=True).items()
        for target in targets
    )


def test_protocol_has_no_import_circles() -> None:
    """No protocol module imports, through any chain, itself (TYPE_CHECKING imports count)."""
    edges = {
        module: {t for t in targets if within(t, "protocol")}
        for module, targets in protocol_graph().items()
    }
    assert [] == circles(edges)


def test_no_protocol_module_is_too_long() -> None:
    """Every protocol module has at most 600 lines: one concern each."""
    assert {} == too_long(PROTOCOL)
