"""The shape rules of issue 9's "Done when", checked on the tree.

Each test names the offenders in its failure message. The rules:
modules in ``knlocal/`` stay under 500 lines; functions stay under 60 lines
unless a ``# long:`` comment (on or within the 3 lines above the ``def``, or a
line of the docstring starting with ``long:``) says why; no private name is
imported across modules; knlocal has no import cycle; knlocal imports nothing
of the application (``functions``, ``knuser_tools``); the function image's packages
(``functions``, ``leantrace``) import nothing of the runtime; ``knlocal.apis`` is the
bottom layer (it imports nothing of eventing, serving or the runtime).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("knlocal", "knuser_tools", "functions", "leantrace")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
LONG_MARKER = "# long:"


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module name an ``ImportFrom`` names (relative ones resolved)."""
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports run when the module loads: top level, and inside top-level
    ``if``/``try`` blocks, but not those under ``if TYPE_CHECKING``."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            pending.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            pending.extend(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                pending.extend(handler.body)
    return found


def _imported_modules(path: Path, everywhere: bool = False) -> set[str]:
    """Absolute names of the modules ``path`` imports (at load time, or anywhere)."""
    module = _module_name(path)
    tree = _parse(path)
    nodes = (
        [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
        if everywhere
        else _module_level_imports(tree)
    )
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        else:
            base = _absolute(module, path, node)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def test_no_module_in_knlocal_over_500_lines() -> None:
    too_long = [
        f"{path.relative_to(ROOT)}: {lines} lines"
        for path in _modules("knlocal")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    ]
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines: {too_long}"


def _has_reason(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    around = lines[max(0, first - 4) : node.lineno]
    if any(line.strip().startswith(LONG_MARKER) for line in around):
        return True
    docstring = ast.get_docstring(node) or ""
    return any(line.strip().startswith("long:") for line in docstring.splitlines())


def test_no_long_function_in_knlocal_without_a_reason() -> None:
    offenders = []
    for path in _modules("knlocal"):
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(_parse(path)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES and not _has_reason(lines, node):
                offenders.append(
                    f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)"
                )
    assert not offenders, (
        f"functions over {MAX_FUNCTION_LINES} lines without a {LONG_MARKER!r} reason: {offenders}"
    )


def test_no_private_name_imported_across_modules() -> None:
    offenders = []
    for package in PACKAGES:
        for path in _modules(package):
            module = _module_name(path)
            for node in ast.walk(_parse(path)):
                if not isinstance(node, ast.ImportFrom):
                    continue
                source = _absolute(module, path, node)
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        offenders.append(f"{module} imports {alias.name} from {source}")
    assert not offenders, f"private names imported across modules: {offenders}"


def _knlocal_graph() -> dict[str, set[str]]:
    paths = {_module_name(path): path for path in _modules("knlocal")}
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        graph[module] = {
            name for name in _imported_modules(path) if name in paths and name != module
        }
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return None
        visiting.append(node)
        for neighbour in sorted(graph[node]):
            if cycle := visit(neighbour):
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        if cycle := visit(start):
            return cycle
    return None


def _package_edges(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Drop edges from a package to its own submodules: ``import a.b`` loads ``a``
    first, so an ``__init__`` importing its children is not a cycle."""
    return {
        module: {name for name in targets if not name.startswith(module + ".")}
        for module, targets in graph.items()
    }


def test_no_import_cycle_in_knlocal() -> None:
    cycle = _find_cycle(_package_edges(_knlocal_graph()))
    assert cycle is None, f"import cycle among knlocal modules: {' -> '.join(cycle or [])}"


def test_knlocal_imports_nothing_of_the_application() -> None:
    offenders = [
        f"{_module_name(path)} imports {name}"
        for path in _modules("knlocal")
        for name in sorted(_imported_modules(path, everywhere=True))
        if name.split(".")[0] in {"functions", "knuser_tools"}
    ]
    assert not offenders, f"knlocal importing the application: {offenders}"


def test_leantrace_and_functions_import_nothing_of_the_runtime() -> None:
    # Both ship in the function image, which has no knlocal; leantrace serves both sides.
    shipped = {"leantrace": {"functions", "knlocal", "knuser_tools"}, "functions": {"knlocal"}}
    offenders = [
        f"{_module_name(path)} imports {name}"
        for package, forbidden in shipped.items()
        for path in _modules(package)
        for name in sorted(_imported_modules(path, everywhere=True))
        if name.split(".")[0] in forbidden
    ]
    assert not offenders, f"the function image's packages importing what it lacks: {offenders}"


def test_apis_is_the_bottom_layer() -> None:
    above = ("knlocal.eventing", "knlocal.serving", "knlocal.runtime")
    offenders = [
        f"{_module_name(path)} imports {name}"
        for path in _modules("knlocal/apis")
        for name in sorted(_imported_modules(path, everywhere=True))
        if any(name == layer or name.startswith(layer + ".") for layer in above)
    ]
    assert not offenders, f"knlocal.apis importing a layer above it: {offenders}"


def test_the_checks_see_what_they_look_for() -> None:
    """The rules above can fail: a cycle is found, and only load-time imports count."""
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None
    tree = ast.parse(
        "import x\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import y\n"
        "try:\n    import z\nexcept ImportError:\n    pass\n"
        "def f():\n    import w\n"
    )
    names = {alias.name for node in _module_level_imports(tree) for alias in node.names}
    assert names == {"x", "TYPE_CHECKING", "z"}
