"""The package layout of DESIGN.md §1, checked on the source with `ast`.

Three rules, over every .py file of the top-level packages:

- no import cycle between modules (imports run at import time: module level,
  `if TYPE_CHECKING:` blocks excluded);
- the package arrows of the §1 table (`ALLOWED`): a package imports only the
  packages its row names, at any level of the code; `lab/` and `tests/` may
  import anything, and nothing else imports `cli/`;
- no function-level import of our own packages in the packages listed in
  `NO_FUNCTION_IMPORTS` (widen it as packages are cleaned up).

Each check is a function of a scanned tree, tried first on a small synthetic
tree that breaks its rule, so that a check that finds nothing is known to be
able to find something.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("proto", "metrics", "raft", "pki", "scheduler", "manager", "worker", "overlay_net",
            "node", "cli", "lab", "tests")
EVERYTHING = frozenset(PACKAGES)

# DESIGN.md §1, "may import" (the package itself is always allowed).
ALLOWED: Mapping[str, frozenset[str]] = {
    "proto": frozenset(),
    # the metric definitions (issue 14): below everything that updates them
    "metrics": frozenset({"proto"}),
    "raft": frozenset({"proto", "pki", "metrics"}),
    "pki": frozenset({"proto"}),
    "scheduler": frozenset({"proto"}),
    "manager": frozenset({"proto", "raft", "pki", "scheduler", "metrics"}),
    "worker": frozenset({"proto", "pki", "overlay_net", "metrics"}),
    "overlay_net": frozenset({"proto"}),
    "node": frozenset({"proto", "pki", "raft", "manager", "worker", "overlay_net", "metrics"}),
    "cli": frozenset({"proto", "pki", "node"}),
    "lab": EVERYTHING,
    "tests": EVERYTHING,
}

# Packages whose functions may not import our own modules: all of them but
# tests/ (a test may import what only it needs).
NO_FUNCTION_IMPORTS = ("proto", "metrics", "raft", "pki", "scheduler", "manager", "worker",
                       "overlay_net", "node", "cli", "lab")

# Known exceptions, (importer module, imported module): why. Each should go.
EXCEPTIONS: Mapping[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    """One import of one of our modules by another."""
    importer: str        # dotted module name
    target: str          # dotted module name of what is imported (ours)
    line: int
    at_import_time: bool  # module level and not under `if TYPE_CHECKING:`
    in_function: bool


# ------------------------------------------------------------------ scanning --

def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def find_modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Every module of the packages under root: dotted name -> file."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            found[module_name(root, path)] = path
    return found


def _resolve(name: str, modules: Mapping[str, Path]) -> str | None:
    """The longest prefix of a dotted name that is one of our modules."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _targets(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool,
             modules: Mapping[str, Path]) -> list[str]:
    """Our modules an import statement loads."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
        return [t for t in (_resolve(n, modules) for n in names) if t is not None]
    base = node.module or ""
    if node.level:
        package = importer.split(".") if is_package else importer.split(".")[:-1]
        package = package[:len(package) - (node.level - 1)]
        base = ".".join([*package, *([base] if base else [])])
    found = []
    for alias in node.names:
        submodule = f"{base}.{alias.name}" if base else alias.name
        target = submodule if submodule in modules else _resolve(base, modules)
        if target is not None:
            found.append(target)
    return found


def scan(root: Path, packages: Iterable[str] = PACKAGES) -> list[Import]:
    """Every import of one of our modules in the packages under root."""
    modules = find_modules(root, packages)
    imports: list[Import] = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"

        def visit(node: ast.AST, at_import_time: bool, in_function: bool) -> None:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(node, name, is_package, modules):
                    imports.append(Import(name, target, node.lineno, at_import_time,
                                          in_function))
                return
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                at_import_time, in_function = False, True
            if isinstance(node, ast.If) and _is_type_checking(node.test):
                for child in node.body:
                    visit(child, False, in_function)
                for child in node.orelse:
                    visit(child, at_import_time, in_function)
                return
            for child in ast.iter_child_nodes(node):
                visit(child, at_import_time, in_function)

        visit(tree, True, False)
    return imports


# -------------------------------------------------------------------- checks --

def _package(module: str) -> str:
    return module.split(".", 1)[0]


def cycles(imports: Iterable[Import]) -> list[list[str]]:
    """The import cycles among modules (strongly connected components of more than
    one module, or a module importing itself), each sorted."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if imp.at_import_time and imp.importer != imp.target:
            graph.setdefault(imp.importer, set()).add(imp.target)
            graph.setdefault(imp.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def strongconnect(start: str) -> None:  # Tarjan, iteratively (deep trees)
        nonlocal counter
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1 or node in graph[node]:
                        found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            strongconnect(module)
    return found


def arrow_violations(imports: Iterable[Import],
                     allowed: Mapping[str, frozenset[str]] = ALLOWED,
                     exceptions: Mapping[tuple[str, str], str] = EXCEPTIONS) -> list[str]:
    """Imports of a package its row of the table does not name."""
    bad = []
    for imp in imports:
        source, target = _package(imp.importer), _package(imp.target)
        if source == target or target in allowed.get(source, frozenset()):
            continue
        if (imp.importer, imp.target) in exceptions:
            continue
        bad.append(f"{imp.importer}:{imp.line} imports {imp.target} "
                   f"({source}/ may import {', '.join(sorted(allowed.get(source, ()))) or 'nothing of ours'})")
    return bad


def function_imports(imports: Iterable[Import], packages: Iterable[str] = NO_FUNCTION_IMPORTS,
                     exceptions: Mapping[tuple[str, str], str] = EXCEPTIONS) -> list[str]:
    """Imports of our modules inside functions of the given packages."""
    checked = set(packages)
    return [f"{imp.importer}:{imp.line} imports {imp.target} inside a function"
            for imp in imports
            if imp.in_function and _package(imp.importer) in checked
            and (imp.importer, imp.target) not in exceptions]


# ---------------------------------------------------- the checks can fail --

def _tree(root: Path, files: Mapping[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


SYNTHETIC = {
    "proto/__init__.py": "",
    "proto/model.py": "",
    "node/__init__.py": "",
    "node/a.py": "from node import b\n",
    "node/b.py": "from . import c\n",
    "node/c.py": "import node.a\nfrom typing import TYPE_CHECKING\n"
                 "if TYPE_CHECKING:\n    from cli import main\n",
    "node/d.py": "def late():\n    from proto import model\n    return model\n",
    "cli/__init__.py": "",
    "cli/main.py": "from node import a\n",
    "proto/bad.py": "from node import d\n",
}


def test_the_checks_find_what_they_look_for(tmp_path: Path) -> None:
    root = _tree(tmp_path, SYNTHETIC)
    imports = scan(root, ("proto", "node", "cli"))
    assert cycles(imports) == [["node.a", "node.b", "node.c"]]  # TYPE_CHECKING ignored
    assert sorted(arrow_violations(imports, exceptions={})) == [
        "node.c:4 imports cli.main (node/ may import manager, metrics, overlay_net, pki, "
        "proto, raft, worker)",
        "proto.bad:1 imports node.d (proto/ may import nothing of ours)",
    ]
    assert function_imports(imports, ("node",), exceptions={}) == [
        "node.d:2 imports proto.model inside a function"]
    assert function_imports(imports, ("cli",), exceptions={}) == []


def test_a_tree_that_keeps_the_rules_passes(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"proto/__init__.py": "", "proto/model.py": "",
                            "node/__init__.py": "", "node/a.py": "from proto import model\n",
                            "cli/__init__.py": "", "cli/main.py": "import node.a\n"})
    imports = scan(root, ("proto", "node", "cli"))
    assert (cycles(imports), arrow_violations(imports, exceptions={}),
            function_imports(imports, exceptions={})) == ([], [], [])


# ------------------------------------------------------------ the real tree --

@pytest.fixture(scope="module")
def tree_imports() -> list[Import]:
    return scan(ROOT)


def test_no_import_cycle(tree_imports: list[Import]) -> None:
    assert cycles(tree_imports) == []


def test_packages_import_only_what_design_allows(tree_imports: list[Import]) -> None:
    assert arrow_violations(tree_imports) == []


def test_nothing_but_lab_and_tests_imports_cli(tree_imports: list[Import]) -> None:
    importers = {_package(i.importer) for i in tree_imports if _package(i.target) == "cli"}
    assert importers <= {"cli", "lab", "tests"}


def test_no_function_level_import_of_our_packages(tree_imports: list[Import]) -> None:
    assert function_imports(tree_imports) == []


def test_every_exception_is_still_needed(tree_imports: list[Import]) -> None:
    present = {(i.importer, i.target) for i in tree_imports}
    assert [pair for pair in EXCEPTIONS if pair not in present] == []
