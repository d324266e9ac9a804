"""Import direction of the package, read from every module's source (imports inside functions
included), walked with pkgutil in a fresh interpreter so nothing this test process imported
can hide a module.

cli → experiments → (acquisition, adapt, training) → models → small utilities (metrics);
models never import the simulator, the acquisition, adaptation, training, experiments or the
CLI; the middle layer takes its data sources (the simulator among them) injected, so it never
imports the simulator either; the library never imports the CLI or the experiments; no import
cycles.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from functools import cache

import pytest

WALK_SCRIPT = textwrap.dedent(
    '''
    import ast, json, pkgutil, sys
    import live_restore

    def is_type_checking(test):
        return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")

    def imports(tree, name, is_package):
        """(imported module, line, runtime) for every live_restore import in the tree."""
        package = name if is_package else name.rpartition(".")[0]
        found = []

        def visit(node, runtime):
            if isinstance(node, ast.If) and is_type_checking(node.test):
                for child in node.body:
                    visit(child, False)
                for child in node.orelse:
                    visit(child, runtime)
                return
            if isinstance(node, ast.Import):
                found.extend((a.name, node.lineno, runtime) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                for alias in node.names:
                    found.append((f"{base}.{alias.name}", node.lineno, runtime))
            for child in ast.iter_child_nodes(node):
                visit(child, runtime)

        visit(tree, True)
        return [f for f in found if f[0] == "live_restore" or f[0].startswith("live_restore.")]

    modules, errors = {}, []
    walk = pkgutil.walk_packages(live_restore.__path__, "live_restore.", onerror=errors.append)
    infos = [(None, "live_restore", True), *walk]
    for info in infos:
        name, is_package = info[1], info[2]
        spec = __import__("importlib.util").util.find_spec(name)
        with open(spec.origin, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), spec.origin)
        modules[name] = {"file": spec.origin, "imports": imports(tree, name, is_package)}
    json.dump({"modules": modules, "errors": errors}, sys.stdout)
    '''
)

LIBRARY_FORBIDS = ("live_restore.cli", "live_restore.experiments")
MODELS_FORBIDS = (
    "live_restore.sim",
    "live_restore.acquisition",
    "live_restore.experiments",
    "live_restore.adapt",
    "live_restore.training",
    "live_restore.cli",
)

MIDDLE_LAYER = ("live_restore.acquisition", "live_restore.adapt", "live_restore.training",
                "live_restore.viewer", "live_restore.distributed")
MIDDLE_FORBIDS = ("live_restore.sim", *LIBRARY_FORBIDS)


@cache
def _walk() -> dict:
    """``{module: {"file", "imports": [[target, line, runtime], ...]}}`` from a fresh
    interpreter."""
    done = subprocess.run([sys.executable, "-c", WALK_SCRIPT], capture_output=True, text=True,
                          check=False, timeout=120)
    if done.returncode != 0:
        pytest.fail(f"walking live_restore failed:\n{done.stderr[-2000:]}")
    data = json.loads(done.stdout)
    assert not data["errors"], f"packages that failed to import while walking: {data['errors']}"
    return data["modules"]


def _resolve(target: str, modules: dict) -> str:
    """The module an import loads: ``from pkg import name`` is ``pkg.name`` only if that is a
    module, else ``pkg`` itself."""
    return target if target in modules else target.rpartition(".")[0]


def _unit(module: str) -> str:
    """The subpackage (or top-level module) a module belongs to: ``live_restore.models``."""
    return ".".join(module.split(".")[:2])


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _violations(forbidden_for: dict[str, tuple[str, ...]]) -> list[str]:
    """``file:line: importer imports target`` for each import a rule forbids."""
    modules = _walk()
    found = []
    for name, info in sorted(modules.items()):
        forbidden = next((f for p, f in forbidden_for.items() if _under(name, p)), ())
        for target, line, _ in info["imports"]:
            target = _resolve(target, modules)
            if any(_under(target, f) and not _under(name, f) for f in forbidden):
                found.append(f"{info['file']}:{line}: {name} imports {target}")
    return found


def test_the_walk_sees_every_subpackage():
    assert {_unit(m) for m in _walk()} >= {
        f"live_restore.{p}"
        for p in ("acquisition", "models", "adapt", "training", "sim", "experiments", "cli")
    }


def test_models_import_nothing_above_them():
    assert _violations({"live_restore.models": MODELS_FORBIDS}) == []


def test_acquisition_adaptation_and_training_never_import_the_simulator():
    assert _violations(dict.fromkeys(MIDDLE_LAYER, MIDDLE_FORBIDS)) == []


def test_the_library_never_imports_the_cli_or_the_experiments():
    rules = {
        "live_restore.cli": (),
        "live_restore.experiments": ("live_restore.cli",),
        "live_restore": LIBRARY_FORBIDS,  # every other module: the package's root and below
    }
    assert _violations(rules) == []


GUI_PACKAGES = ("qtpy", "PyQt6", "PySide6", "ndv", "vispy", "superqt", "pymmcore_widgets",
                "napari")


def test_only_the_viewer_needs_qt():
    """The core installs and runs without the ``viewer`` extra: Qt, ndv and pymmcore-widgets
    are imported under ``live_restore/viewer`` only (at any depth, inside functions too)."""
    import ast
    from pathlib import Path

    import live_restore

    root = Path(live_restore.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).parts[0] == "viewer":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.relative_to(root)}:{node.lineno}: {name}" for name in names
                      if name.split(".")[0] in GUI_PACKAGES]
    assert found == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def _runtime_edges(level) -> tuple[dict[str, set[str]], dict[tuple[str, str], str]]:
    """Graph of runtime imports (``TYPE_CHECKING`` blocks left out) between ``level(module)``
    nodes, with one ``file:line`` witness per edge. The root package's lazy re-exports are not
    imports and the root is left out."""
    modules = _walk()
    graph: dict[str, set[str]] = {}
    witness: dict[tuple[str, str], str] = {}
    for name, info in modules.items():
        if name == "live_restore":
            continue
        for target, line, runtime in info["imports"]:
            target = _resolve(target, modules)
            a, b = level(name), level(target)
            if runtime and target != "live_restore" and a != b:
                graph.setdefault(a, set()).add(b)
                witness.setdefault((a, b), f"{info['file']}:{line}")
    return graph, witness


@pytest.mark.parametrize("level", [_unit, str], ids=["subpackages", "modules"])
def test_no_import_cycles(level):
    graph, witness = _runtime_edges(level)
    report = []
    for cycle in _cycles(graph):
        edges = [f"{a} -> {b} ({witness[a, b]})" for a in cycle for b in cycle
                 if (a, b) in witness]
        report.append("; ".join(edges))
    assert report == []


def test_the_checks_catch_what_they_are_for():
    """The rules find a planted violation and a planted cycle (guards against a walk that
    silently reads nothing)."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _resolve("live_restore.models.restorer", _walk()) == "live_restore.models.restorer"
    assert _resolve("live_restore.models.Restorer", _walk()) == "live_restore.models"
    lazy = _violations({"live_restore.cli": ("live_restore.acquisition",)})  # inside commands
    assert any("live_restore.cli.acquisition imports live_restore.acquisition.run" in v
               for v in lazy)
    imports = _walk()["live_restore.acquisition.run"]["imports"]
    assert any(t == "live_restore.acquisition.hook.LiveRestorer" for t, _, _ in imports)
