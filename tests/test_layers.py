"""The package's layering, checked on the source: what each part may import, and no cycles.

:data:`MAY_IMPORT` is the documentation of the architecture: a part of ``pipeline`` (a leaf
module, ``manifest`` or a sub-package) may import itself and what its row names, nothing
else. Every import counts - at module level, under ``if TYPE_CHECKING:`` (a type imported
from a module that imports you lives in the wrong place) and inside functions - except
the deferred ones listed in :data:`DEFERRED_EXCEPTIONS`. What a fresh interpreter actually loads
is checked in ``tests/test_extras.py``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pipeline"

#: Modules that import nothing of the package but other leaves: exceptions, the
#: content-type table, URL quoting, validators, local files, path filters, the extras
#: message, the bucket key layout, the transfer settings' ranges, the pyproject table reader,
#: the strict JSON parser of documents, atomic writes, opening files below a folder without
#: following links, reading walked files, the one rule for names and keys, Vite's manifest,
#: resource hints and the DPR cap (first paint), content-coding negotiation (`serve` and the
#: Flask extension share it), the child processes to end on every exit path (the encoding
#: pool registers, the Ctrl-C/SIGTERM guard ends them).
LEAVES = frozenset({"errors", "media_types", "urls", "validate", "localfs", "pathfilter",
                    "extras", "keys", "limits", "pyproject", "jsondoc", "atomic", "nofollow",
                    "walked", "keyrule", "vitemanifest", "hints", "dprcap", "negotiate",
                    "processes"})

#: Part -> the parts it may import. Imports flow one way: leaves -> manifest -> build ->
#: release -> cli; manifest -> releasedoc -> serving, release; storage -> release, images;
#: manifest, releasedoc, serving -> flaskext.
MAY_IMPORT: dict[str, frozenset[str]] = {
    **{leaf: LEAVES for leaf in LEAVES},
    "manifest": LEAVES,                                  # the format only
    "build": LEAVES | {"manifest"},                      # no network, no Flask
    "storage": LEAVES,                                   # the only boto3 user
    "release": LEAVES | {"manifest", "releasedoc", "build", "storage"},
    "releasedoc": LEAVES | {"manifest"},                # the release format: a manifest and more
    "serving": LEAVES | {"manifest", "releasedoc", "storage"},
    "images": LEAVES | {"storage"},
    "cli": LEAVES | {"manifest", "releasedoc", "build", "storage", "release", "images"},
    # pictures encode variants on demand in development with the deploy's encoder.
    "flaskext": LEAVES | {"manifest", "releasedoc", "serving", "build"},
    "__init__": LEAVES | {"manifest", "flaskext"},       # the public names
    "__main__": frozenset({"cli"}),                    # python -m pipeline: the CLI only
}

#: (importing module, imported part) allowed only *deferred* - inside a function or under
#: ``if TYPE_CHECKING:``, never when the module is imported: ``flask cdn deploy`` and
#: ``flask cdn serve`` are the CLI's own commands, loaded when run; ``cdn-deploy --app``
#: loads the app and reads its folders the way ``flask cdn deploy`` does, only when asked.
DEFERRED_EXCEPTIONS = frozenset({("flaskext.commands", "cli"), ("flaskext.appsettings", "cli"),
                                 ("cli.common", "flaskext")})


def module_name(path: Path) -> str:
    """``pipeline/build/css.py`` -> ``build.css``; ``pipeline/__init__.py`` -> ``__init__``."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def part_of(module: str) -> str:
    return module.split(".")[0]


def is_module(name: str) -> bool:
    path = PACKAGE.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports(path: Path) -> Iterator[tuple[str, bool]]:
    """``(imported module of the package, deferred)`` for every import in ``path``."""
    module = module_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    package = [] if module == "__init__" else package
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node, deferred in _walk(tree, deferred=False):
        if isinstance(node, ast.Import):
            names = [a.name.removeprefix("pipeline.") for a in node.names
                     if a.name.startswith("pipeline.")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
            elif (node.module or "").split(".")[0] == "pipeline":
                base = []
                node.module = (node.module or "").removeprefix("pipeline").lstrip(".") or None
            else:
                continue
            target = ".".join([*base, *([node.module] if node.module else [])])
            names = [f"{target}.{a.name}".lstrip(".") if is_module(f"{target}.{a.name}"
                                                               .lstrip(".")) else target
                     for a in node.names]
        else:
            continue
        for name in names:
            if name:
                yield name, deferred


def _walk(node: ast.AST, *, deferred: bool) -> Iterator[tuple[ast.AST, bool]]:
    """Every node, and whether it runs after import time (in a function, under TYPE_CHECKING)."""
    for child in ast.iter_child_nodes(node):
        yield child, deferred
        inner = deferred or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            for grandchild in child.body:
                yield grandchild, True
                yield from _walk(grandchild, deferred=True)
            for grandchild in child.orelse:
                yield grandchild, deferred
                yield from _walk(grandchild, deferred=deferred)
            continue
        yield from _walk(child, deferred=inner)


def allowed(module: str, target: str, *, deferred: bool) -> bool:
    part = part_of(module)
    if part_of(target) == part:
        return True
    if deferred and (module, part_of(target)) in DEFERRED_EXCEPTIONS:
        return True
    rules = MAY_IMPORT[part]
    return part_of(target) in rules or any(target == r or target.startswith(r + ".")
                                           for r in rules)


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_part_is_in_the_table() -> None:
    parts = {part_of(module_name(path)) for path in sources()}
    assert parts <= set(MAY_IMPORT), f"add {sorted(parts - set(MAY_IMPORT))} to MAY_IMPORT"


def test_no_module_imports_a_layer_it_may_not() -> None:
    upward = sorted(
        f"{module_name(path)} imports {target}{' (deferred)' if deferred else ''}"
        for path in sources() for target, deferred in imports(path)
        if not allowed(module_name(path), target, deferred=deferred)
    )
    assert upward == []


def test_no_import_cycle_between_modules() -> None:
    """Counting every import, lazy or under TYPE_CHECKING: one owner per type."""
    graph = {module_name(path): {t for t, _ in imports(path)} for path in sources()}
    cycles = [group for group in _strongly_connected(graph) if len(group) > 1]
    assert cycles == []


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteration order fixed so a failure reads the same every run."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_the_checker_sees_what_it_must() -> None:
    """The rules catch an upward import, also a deferred one, and the walk sees them all."""
    assert not allowed("storage.s3", "release.plan", deferred=False)
    assert not allowed("manifest", "build.css", deferred=True)
    assert not allowed("flaskext.state", "cli.settings", deferred=True)
    assert allowed("flaskext.commands", "cli.main", deferred=True)
    assert not allowed("flaskext.commands", "cli.main", deferred=False)
    assert ("flaskext.state", False) in set(imports(PACKAGE / "flaskext" / "static.py"))
    commands = set(imports(PACKAGE / "flaskext" / "commands.py"))
    assert ("cli.main", True) in commands  # in a function
    appsettings = set(imports(PACKAGE / "flaskext" / "appsettings.py"))
    assert ("cli.settings", True) in appsettings  # in a function and under TYPE_CHECKING
