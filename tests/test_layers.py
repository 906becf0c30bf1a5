"""The package's layers, read from the source with `ast` (nothing is imported): which part may import which.

Every import counts, also those inside functions and under `if TYPE_CHECKING:`. The rules:
- training/ sits on top of the pipeline: inference/, evaluation/, preprocessing/, dataset/ and artifact never
  import it (a container that only predicts must not depend on the trainer);
- evaluation/ sits on inference/: inference/ never imports evaluation/ (applying calibration.json is prediction,
  fitting it is evaluation);
- dataset/ is the bottom layer: it imports nothing from preprocessing/, planning/, training/, inference/ or
  evaluation/;
- no two modules import each other, directly or through others.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]  # not from helpers, which imports the package
PACKAGE = "universalclassifier"
PACKAGE_ROOT = REPO / PACKAGE


@dataclass(frozen=True)
class Import:
    """One import statement of a package module that names another package module."""

    source: str  # importing module, e.g. universalclassifier.inference.predict
    target: str  # imported module, e.g. universalclassifier.artifact
    file: str  # relative to the folder holding the package
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line} imports {self.target}"


def module_name(path: Path, root: Path = PACKAGE_ROOT) -> str:
    """The dotted name of a module file below the package root (a package's __init__.py is the package)."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules(root: Path = PACKAGE_ROOT) -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def _imported_names(node: ast.Import | ast.ImportFrom, source: str, is_package: bool) -> list[str]:
    """The dotted names an import statement refers to (for `from X import a`: both X.a and X)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative import: resolve against the importing module's package
        anchor = source.split(".")
        anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
        base = ".".join(anchor + ([node.module] if node.module else []))
    return [f"{base}.{alias.name}" for alias in node.names] + [base]


def import_graph(root: Path = PACKAGE_ROOT) -> dict[str, list[Import]]:
    """For each package module, the imports (anywhere in the file) that name another module of the package.

    `from package import name` counts as an import of `package.name` when that is a module, else of `package`.
    """
    modules = package_modules(root)
    graph: dict[str, list[Import]] = {}
    for source, path in modules.items():
        imports: list[Import] = []
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            names = _imported_names(node, source, path.name == "__init__.py")
            if isinstance(node, ast.ImportFrom):
                submodules = [n for n in names[:-1] if n in modules]
                names = submodules if len(submodules) == len(names) - 1 else [*submodules, names[-1]]
            for name in names:
                if name in modules and name != source:
                    imports.append(Import(source, name, path.relative_to(root.parent).as_posix(), node.lineno))
        graph[source] = sorted(set(imports), key=lambda i: (i.line, i.target))
    return graph


def _in(module: str, *parts: str) -> bool:
    """Whether a module lies in one of the given parts of the package (subpackages or single modules)."""
    return any(module == f"{PACKAGE}.{p}" or module.startswith(f"{PACKAGE}.{p}.") for p in parts)


def forbidden_imports(
    graph: dict[str, list[Import]], importers: tuple[str, ...], imported: tuple[str, ...]
) -> list[str]:
    """The imports from modules in `importers` of modules in `imported`, as readable lines."""
    return [
        str(i) for imports in graph.values() for i in imports if _in(i.source, *importers) and _in(i.target, *imported)
    ]


def find_cycle(graph: dict[str, list[Import]]) -> list[Import] | None:
    """One import cycle as the chain of imports that closes it, or None when the graph has none."""
    state: dict[str, str] = {}  # "active" while on the current path, "done" once fully explored
    path: list[Import] = []

    def visit(module: str) -> list[Import] | None:
        state[module] = "active"
        for edge in graph.get(module, []):
            if state.get(edge.target) == "active":
                start = next((k for k, e in enumerate(path) if e.source == edge.target), len(path))
                return [*path[start:], edge]
            if edge.target not in state:
                path.append(edge)
                found = visit(edge.target)
                if found:
                    return found
                path.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module)
            if cycle:
                return cycle
    return None


GRAPH = import_graph()


def test_the_graph_sees_the_package():
    assert len(GRAPH) > 40
    assert any(i.target == f"{PACKAGE}.artifact" for i in GRAPH[f"{PACKAGE}.inference.predictor"])
    # an import inside a function body counts as well
    assert any(i.target == f"{PACKAGE}.inference.predict" for i in GRAPH[PACKAGE])


def test_only_training_and_its_users_import_training():
    found = forbidden_imports(GRAPH, ("inference", "evaluation", "preprocessing", "dataset", "artifact"), ("training",))
    assert not found, "these modules must not depend on training/:\n" + "\n".join(found)


def test_inference_does_not_import_evaluation():
    # evaluation/ predicts through inference/ (uc_evaluate), and applying a calibration is part of prediction
    found = forbidden_imports(GRAPH, ("inference",), ("evaluation",))
    assert not found, "inference/ must not depend on evaluation/:\n" + "\n".join(found)


def test_dataset_is_the_bottom_layer():
    found = forbidden_imports(GRAPH, ("dataset",), ("preprocessing", "planning", "training", "inference", "evaluation"))
    assert not found, "dataset/ must not import the pipeline built on it:\n" + "\n".join(found)


def test_no_import_cycle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle:\n" + "\n".join(str(i) for i in cycle)


def test_cycles_and_relative_imports_are_detected(tmp_path):
    package = tmp_path / PACKAGE
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from universalclassifier.sub import b\n")
    (package / "sub" / "b.py").write_text("from ..c import X\n")
    (package / "c.py").write_text("import universalclassifier.a\nX = 1\n")
    graph = import_graph(package)
    cycle = find_cycle(graph)
    assert cycle is not None
    assert [i.source for i in cycle] == [f"{PACKAGE}.a", f"{PACKAGE}.sub.b", f"{PACKAGE}.c"]
    assert forbidden_imports(graph, ("sub",), ("c",)) == [f"{PACKAGE}/sub/b.py:1 imports {PACKAGE}.c"]


def test_tests_share_code_through_helper_modules_only():
    found = []
    for path in sorted([*(REPO / "tests").glob("*.py"), *(REPO / "benchmarks").glob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top == "conftest" or top.startswith("test_"):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno} imports {name}")
    assert not found, "import shared test code from tests/helpers.py instead:\n" + "\n".join(found)
