"""The package layout: archc's modules import each other without a cycle, stay small, and keep torch off
the compiler path. Read from the sources with ``ast``, so an import hidden in a function counts too."""

import ast
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "archc"
MAX_LINES = 520
# what runs a model: the only modules that may import torch when they are imported
RUNS_MODELS = {"archc.backends.interpret"}  # and the lifter, which reads a PyTorch model (below)


def module_names() -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, whether it is a package's ``__init__``)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(name: str, path: Path, is_package: bool, known) -> list[tuple[str, int, bool]]:
    """(module imported, line, at module level) for every import in a file, at any depth, but for those
    under ``if TYPE_CHECKING:`` (annotations only: nothing runs them)."""
    found = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child.test):
                for stmt in child.orelse:
                    visit_stmt(stmt, top)
                continue
            visit_stmt(child, top)

    def visit_stmt(node: ast.AST, top: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno, top) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:  # ``from . import nodes`` imports the module archc.lang.nodes
                sub = f"{module}.{alias.name}"
                found.append((sub if sub in known else module, node.lineno, top))
        else:
            inner = top and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(node, inner)

    visit(ast.parse(path.read_text()), True)
    return found


def import_graph() -> nx.DiGraph:
    known = module_names()
    graph = nx.DiGraph()
    graph.add_nodes_from(known)
    for name, (path, is_package) in known.items():
        for target, _, _ in imports(name, path, is_package, known):
            if target in known and target != name:
                graph.add_edge(name, target)
    return graph


def test_the_graph_sees_every_kind_of_import():
    """The graph this file checks is built right: relative, absolute and function-level imports count."""
    graph = import_graph()
    assert graph.has_edge("archc.spec", "archc.backends.python.codegen")  # module level, relative
    assert graph.has_edge("archc.commands.show", "archc.backends.diagram.draw")  # inside a function: ``from ..backends``
    assert graph.has_edge("archc.lang.parser", "archc.lang.nodes")  # ``from . import nodes as n``
    assert graph.has_edge("archc.ops", "archc.ops.conv")
    assert len(graph) > 50


def test_no_import_cycles():
    cycles = sorted(nx.simple_cycles(import_graph()), key=len)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join([*c, c[0]]) for c in cycles[:10])


def test_the_stages_are_packages():
    """The pipeline reads from the tree: the front end, elaboration, the op registry, the backends."""
    packages = {name for name, (_, is_package) in module_names().items() if is_package}
    assert {"archc.lang", "archc.sema", "archc.ops", "archc.backends", "archc.backends.python",
            "archc.backends.diagram", "archc.zoo", "archc.built", "archc.commands"} <= packages
    top = {name for name, (_, is_package) in module_names().items() if name.count(".") == 1 and not is_package}
    assert top == {"archc.__main__", "archc.cli", "archc.errors", "archc.spec"}


def test_the_front_end_and_the_registry_import_no_backend():
    graph = import_graph()
    for name in graph:
        if name.startswith(("archc.lang.", "archc.sema.", "archc.ops.")):
            backends = sorted(t for t in graph.successors(name) if t.startswith("archc.backends"))
            assert not backends, f"{name} imports {backends}"


def test_modules_are_small():
    long = {name: n for name, (path, _) in module_names().items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them along a seam): {long}"


def test_the_compiler_path_imports_no_torch_at_module_level():
    """Importing any module but the interpreter leaves torch alone (tests/test_no_torch.py runs the commands)."""
    known = module_names()
    offenders = [f"{name}:{line}" for name, (path, is_package) in known.items()
                 if name not in RUNS_MODELS and not name.startswith("archc.lifting.")
                 for target, line, top in imports(name, path, is_package, known)
                 if top and (target == "torch" or target.startswith("torch."))]
    assert not offenders, f"torch imported at module level: {offenders}"
    assert any(target == "torch" for target, _, top in imports("archc.backends.interpret",
               *known["archc.backends.interpret"], known) if top)  # the check can fail


def test_pyproject_ships_every_package():
    """An installed archc holds every subpackage (setuptools lists them by hand) and the grammar."""
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {name for name, (_, is_package) in module_names().items() if is_package}
    assert set(config["packages"]) == packages | {"archc.codegen_templates", "archc.models", "archc.specs"}
    assert all((PACKAGE.parent / package.replace(".", "/") / name).is_file()
               for package, names in config["package-data"].items() if package.startswith("archc.lang")
               for name in names)
