"""The layers docs/development.md draws: imports point down only, and nothing imports in a circle.

Every import in the package counts, the ones inside functions too (a lazy import is still a
dependency). Each module belongs to the layer its sub-package names.
"""
from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

import pytest

import snakes_web

PACKAGE = Path(snakes_web.__file__).parent
BASE = {"config", "exceptions", "extensions", "version"}  # the bottom: settings, errors, extension slots
OLD_PATHS = {"snakenet", "training"}  # aliases that keep exports pickled by 0.1.0 loading

#: Each layer and the layers it may import (besides itself).
MAY_IMPORT: dict[str, set[str]] = {
    "base": set(),
    "imaging": {"base"},
    "model": {"base", "imaging"},
    "serving": {"base"},
    "feedback": {"base", "imaging", "model"},
    "web": {"base", "imaging", "model", "serving", "feedback"},
    "factory": {"base", "imaging", "model", "serving", "feedback", "web"},
    "tools": {"base", "imaging", "model", "serving", "feedback", "web", "factory"},
    "old paths": {"model"},  # and nothing imports them: they exist for pickles only
}


def module_name(path: Path, root: Path, package: str) -> str:
    """Return the dotted name of the module in ``path``."""
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(root: Path, package: str) -> dict[str, set[str]]:
    """Return {module: the package's modules it imports} for every module under ``root``."""
    files = {module_name(path, root, package): path for path in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = here.split(".")[: len(here.split(".")) - node.level + 1] if node.level else []
                module = ".".join([*base, node.module] if node.module else base)
                targets.update(f"{module}.{alias.name}" if f"{module}.{alias.name}" in files else module
                               for alias in node.names)
        graph[name] = {target for target in targets if target in files and target != name}
    return graph


def layer_of(module: str, package: str = "snakes_web") -> str | None:
    """Return the layer a module of the package belongs to (None: none, which is a mistake)."""
    parts = module.split(".")[1:]
    if not parts:
        return "factory"
    if len(parts) == 1 and parts[0] in BASE:
        return "base"
    if len(parts) == 1 and parts[0] in OLD_PATHS:
        return "old paths"
    if parts[0] == "__main__":
        return "tools"  # `python -m snakes_web` runs the command line
    return parts[0] if parts[0] in MAY_IMPORT else None


def forbidden(graph: Mapping[str, set[str]]) -> list[str]:
    """Return each import that points up or sideways across layers, as "a -> b (layer -> layer)"."""
    found = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            here, there = layer_of(module), layer_of(target)
            if here != there and there not in MAY_IMPORT.get(str(here), set()):
                found.append(f"{module} -> {target} ({here} -> {there})")
    return found


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Return the import cycles: every group of modules that reach each other (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    """The package's imports, read from its files."""
    return imports_of(PACKAGE, "snakes_web")


def test_every_module_belongs_to_a_layer(graph: dict[str, set[str]]) -> None:
    assert [module for module in sorted(graph) if layer_of(module) is None] == []


def test_no_import_cycles(graph: dict[str, set[str]]) -> None:
    assert cycles(graph) == []


def test_imports_point_down_only(graph: dict[str, set[str]]) -> None:
    assert forbidden(graph) == []


def test_the_lower_layers_know_no_web_framework() -> None:
    for layer in ("imaging", "model", "serving", "feedback"):
        for path in (PACKAGE / layer).rglob("*.py"):
            modules = {alias.name.split(".")[0] for node in ast.walk(ast.parse(path.read_text()))
                       if isinstance(node, ast.Import) for alias in node.names}
            modules |= {str(node.module).split(".")[0] for node in ast.walk(ast.parse(path.read_text()))
                        if isinstance(node, ast.ImportFrom) and not node.level}
            assert not modules & {"flask", "werkzeug", "flask_limiter"}, path


def test_the_walk_finds_the_package_itself(graph: dict[str, set[str]]) -> None:
    # The checks above pass on an empty or unparsed graph too: make sure the walk saw real edges.
    assert "snakes_web.model.predictor" in graph["snakes_web.model.fastai_backend"]
    assert "snakes_web.web.pages" in graph["snakes_web"]  # an import inside a function counts
    assert "snakes_web.serving.gate" in graph["snakes_web.serving.worker"]  # a relative import resolves


# --- the checks can see what they guard against --------------------------------------------------

def write_package(root: Path, files: dict[str, str]) -> Path:
    """Write a small package of modules (dotted name -> source) under ``root``."""
    for name, source in files.items():
        path = root.joinpath(*name.split(".")).with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in [path.parent, *path.parent.parents][: len(name.split(".")) - 1]:
            (parent / "__init__.py").touch()
        path.write_text(source)
    return root


def test_a_cycle_through_a_lazy_import_is_found(tmp_path: Path) -> None:
    root = write_package(tmp_path / "snakes_web", {
        "model.predictor": "def load():\n    from .fastai_backend import Backend\n",
        "model.fastai_backend": "from .predictor import load\nclass Backend: ...\n",
        "model.transforms": "import math\n"})
    assert cycles(imports_of(root, "snakes_web")) == [["snakes_web.model.fastai_backend",
                                                       "snakes_web.model.predictor"]]


def test_an_import_pointing_up_is_found(tmp_path: Path) -> None:
    root = write_package(tmp_path / "snakes_web", {
        "web.errors": "def problem(): ...\n",
        "serving.worker": "def handle():\n    from snakes_web.web.errors import problem\n",
        "imaging.fetch": "from ..model import predictor\n",
        "model.predictor": "from snakes_web.exceptions import ModelLoadError\n",
        "exceptions": "class ModelLoadError(Exception): ...\n"})
    assert forbidden(imports_of(root, "snakes_web")) == [
        "snakes_web.imaging.fetch -> snakes_web.model.predictor (imaging -> model)",
        "snakes_web.serving.worker -> snakes_web.web.errors (serving -> web)"]


def test_a_module_outside_the_layers_is_found() -> None:
    assert layer_of("snakes_web.helpers") is None
    assert layer_of("snakes_web.web.pages") == "web"
    assert forbidden({"snakes_web.model.cam": {"snakes_web.snakenet"}}) == [
        "snakes_web.model.cam -> snakes_web.snakenet (model -> old paths)"]
