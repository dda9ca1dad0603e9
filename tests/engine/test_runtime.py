"""Finding a TensorFlow Lite runtime."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from custom_components.coral_vision.engine.errors import RuntimeMissingError
from custom_components.coral_vision.engine.runtime import load_runtime
from tests.conftest import REPO

IMPORT = "custom_components.coral_vision.engine.runtime.import_module"


@pytest.fixture
def fresh_cache() -> Iterator[None]:
    """Forget the cached runtime before and after the test."""
    load_runtime.cache_clear()
    yield
    load_runtime.cache_clear()


def _only(available: dict[str, Any]) -> Any:
    real = importlib.import_module

    def fake_import(name: str, package: str | None = None) -> Any:
        if name in available:
            return available[name]
        if name.split(".")[0] in {"ai_edge_litert", "tflite_runtime", "tensorflow"}:
            raise ImportError(f"No module named {name!r}")
        return real(name, package)

    return fake_import


def test_prefers_ai_edge_litert(fresh_cache: None) -> None:
    runtime = load_runtime()
    assert runtime.name == "ai_edge_litert"
    assert runtime.load_delegate is not None
    assert runtime.interpreter_factory.__module__ == "ai_edge_litert.interpreter"
    assert load_runtime() is runtime


def test_missing_runtime_says_what_to_install(
    fresh_cache: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(IMPORT, _only({}))
    with pytest.raises(RuntimeMissingError, match="pip install ai-edge-litert"):
        load_runtime()


def test_falls_back_to_tflite_runtime(fresh_cache: None, monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.SimpleNamespace(Interpreter=object, load_delegate=print)
    monkeypatch.setattr(
        IMPORT,
        _only({"tflite_runtime.interpreter": module}),
    )
    runtime = load_runtime()
    assert (runtime.name, runtime.interpreter_factory, runtime.load_delegate) == (
        "tflite_runtime",
        object,
        print,
    )


def test_falls_back_to_tensorflow(fresh_cache: None, monkeypatch: pytest.MonkeyPatch) -> None:
    lite = types.SimpleNamespace(
        Interpreter=object, experimental=types.SimpleNamespace(load_delegate=print)
    )
    monkeypatch.setattr(
        IMPORT,
        _only({"tensorflow": types.SimpleNamespace(lite=lite)}),
    )
    runtime = load_runtime()
    assert (runtime.name, runtime.load_delegate) == ("tensorflow", print)


def test_importing_the_engine_does_not_import_a_runtime() -> None:
    code = (
        "import sys; import custom_components.coral_vision.engine.runtime as e; "
        "assert 'ai_edge_litert' not in sys.modules, 'runtime imported eagerly'; "
        "assert callable(e.load_runtime)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
