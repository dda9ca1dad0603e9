"""The whole integration's modules import each other without a cycle (type-only imports aside)."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "custom_components" / "coral_vision"


def _name(path: Path) -> tuple[str, ...]:
    """A module's dotted path inside the package; a package is named by its folder."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[:-1] if parts[-1] == "__init__" else parts


def _type_only(tree: ast.Module) -> set[int]:
    """The nodes under `if TYPE_CHECKING:`, which never run."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(inner) for child in node.body for inner in ast.walk(child))
    return skipped


def _graph() -> dict[str, set[str]]:
    """Each module's relative imports that run (at import or call time), as module names."""
    modules = {_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text("utf-8"))
        skipped = _type_only(tree)
        package = path.relative_to(PACKAGE).with_suffix("").parts[:-1]
        edges = graph.setdefault(".".join(module) or "coral_vision", set())
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or node.level == 0 or id(node) in skipped:
                continue
            base = package[: len(package) - (node.level - 1)]
            target = (*base, *(node.module.split(".") if node.module else ()))
            wanted = [target] if node.module else [(*target, a.name) for a in node.names]
            for name in wanted:
                found = name if name in modules else target
                if found in modules and found != module:
                    edges.add(".".join(found) or "coral_vision")
    return graph


def test_the_integration_imports_without_a_cycle() -> None:
    graph = _graph()
    assert len(graph) > 40  # the walk found the modules
    assert any(edge.startswith("engine.") for edge in graph["accelerator"])
    try:
        list(TopologicalSorter(graph).static_order())
    except CycleError as err:  # pragma: no cover - the failure message
        raise AssertionError(f"modules import in a cycle: {err.args[1]}") from err
