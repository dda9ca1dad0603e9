"""The engine's layout: sub-packages that import each other without a cycle, and a cheap import."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

REPO = Path(__file__).parents[2]
ENGINE = REPO / "custom_components" / "coral_vision" / "engine"


def _part(module: tuple[str, ...]) -> str:
    """The layer a module belongs to: its sub-package, or the top-level module itself."""
    return module[0] if module else "__init__"


def _imports(path: Path) -> list[tuple[str, ...]]:
    """The engine modules a file imports (TYPE_CHECKING ones too), as paths inside the engine."""
    own = path.relative_to(ENGINE).with_suffix("").parts
    package = own[:-1]
    found: list[tuple[str, ...]] = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            assert not any("coral_vision" in alias.name for alias in node.names), path
        if not isinstance(node, ast.ImportFrom):
            continue
        assert node.level > 0 or "coral_vision" not in (node.module or ""), (
            f"{path}: the engine imports itself relatively"
        )
        if node.level == 0:
            continue
        base = package[: len(package) - (node.level - 1)]
        target = (*base, *(node.module.split(".") if node.module else ()))
        if node.module is None:  # from . import store
            found.extend((*target, alias.name) for alias in node.names)
        else:
            found.append(target)
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in ENGINE.rglob("*.py"):
        source = _part(path.relative_to(ENGINE).with_suffix("").parts)
        edges = graph.setdefault(source, set())
        edges.update(_part(t) for t in _imports(path) if _part(t) != source)
    return graph


def test_engine_layers_import_each_other_without_a_cycle() -> None:
    graph = _graph()
    assert {"models", "vision", "inference", "camera", "cli", "server"} <= graph.keys()
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as err:  # pragma: no cover - the failure message
        raise AssertionError(f"engine sub-packages import in a cycle: {err.args[1]}") from err
    assert order.index("models") < order.index("vision") < order.index("inference")


def test_nothing_in_the_engine_imports_its_edges() -> None:
    graph = _graph()
    assert [part for part, edges in graph.items() if "cli" in edges] == []
    # The command line runs the server; nothing else in the engine knows it.
    assert [part for part, edges in graph.items() if "server" in edges] == ["cli"]


def test_the_server_runs_without_home_assistant() -> None:
    # The top-level package "engine", as scripts/coral-vision and the app run it.
    code = (
        "import sys\n"
        "import engine.server.__main__, engine.server.app\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('homeassistant', 'custom_components')]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO / "custom_components" / "coral_vision")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_engine_never_imports_home_assistant() -> None:
    for path in ENGINE.rglob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not any(name.startswith("homeassistant") for name in names), path


def test_importing_the_integration_loads_neither_numpy_nor_pillow() -> None:
    code = (
        "import sys\n"
        "import custom_components.coral_vision\n"
        "import custom_components.coral_vision.engine\n"
        "import custom_components.coral_vision.engine.models\n"
        "import custom_components.coral_vision.engine.inference\n"
        # A server entry's whole path: the client, the wire form and the remote accelerator.
        "import custom_components.coral_vision.engine.client\n"
        "import custom_components.coral_vision.server\n"
        "loaded = [m for m in ('numpy', 'PIL') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
