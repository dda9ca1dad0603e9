"""Hostile model files: bounded memory and work, ModelError and nothing else, size caps.

Each crafted file is read in a subprocess under a memory limit (RLIMIT_AS, 1 GiB above what the
process already maps) and a timeout, so the unbounded reader this replaces fails the test with a
MemoryError, a crash or a timeout instead of taking the machine down. Never read one in the test
process: the old reader needs tens of gigabytes for a half-megabyte file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from custom_components.coral_vision.engine.errors import LabelsError, ModelError
from custom_components.coral_vision.engine.models import flatbuffer, labels
from custom_components.coral_vision.engine.models import model as models
from custom_components.coral_vision.engine.models.flatbuffer import (
    BUILTIN_OPERATORS,
    TENSOR_TYPES,
    parse_model,
)
from custom_components.coral_vision.engine.models.inspect import inspect_model
from custom_components.coral_vision.engine.models.labels import load_labels
from custom_components.coral_vision.engine.models.model import load_model

from .hostile import HALF_MB, MODEL_CASES, Parts, build, hostile_model, hostile_models

REPO = Path(__file__).resolve().parents[2]
LIMIT = 1 << 30
TIMEOUT = 120
# Why each case is refused; None: the bounded reader accepts it, as nothing in it expands
# (names are cut short and a custom op's name is decoded once, however many entries alias it).
REFUSALS = {
    "aliased tensor shape": "expand to more than",
    "aliased tensor name": None,
    "aliased quantization": "expand to more than",
    "aliased custom op name": None,
    "aliased operator": "expand to more than",
    "aliased metadata": "65536 metadata entries",
    "many buffers": "expand to more than",
    "aliased subgraphs": "expand to more than",
}

GUARD = """
import json, resource, sys, time, tracemalloc, types
repo, path, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, repo)
package = types.ModuleType("custom_components.coral_vision")
package.__path__ = [repo + "/custom_components/coral_vision"]
sys.modules["custom_components.coral_vision"] = package
from pathlib import Path
from custom_components.coral_vision.engine.errors import CoralVisionError
from custom_components.coral_vision.engine.models.inspect import inspect_model
from custom_components.coral_vision.engine.models.model import load_model
from custom_components.coral_vision.engine.runtime import load_runtime

load_runtime()  # the interpreter's libraries are mapped before the limit
with open("/proc/self/status") as status:
    mapped = next(int(l.split()[1]) * 1024 for l in status if l.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (mapped + limit, resource.RLIM_INFINITY))
for action, run in (("inspect", inspect_model), ("load", load_model)):
    tracemalloc.start()
    start = time.perf_counter()
    message = ""
    try:
        run(Path(path))
        outcome = "ok"
    except CoralVisionError as err:
        outcome, message = type(err).__name__, str(err)[:500]
    except MemoryError:
        outcome = "MemoryError"
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    line = {"action": action, "outcome": outcome, "message": message, "peak": peak,
            "seconds": time.perf_counter() - start}
    print(json.dumps(line), flush=True)
"""


def guarded(path: Path) -> dict[str, dict[str, object]]:
    """inspect_model and load_model on a file in a memory-limited subprocess, by action."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", GUARD, str(REPO), str(path), str(LIMIT)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"reading {path.name} took more than {TIMEOUT} s")
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    results = {line["action"]: line for line in lines}
    assert set(results) == {"inspect", "load"}, (done.returncode, done.stderr[-2000:])
    return results


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every hostile case at about half a megabyte, written to files."""
    folder = tmp_path_factory.mktemp("hostile")
    for name, data in hostile_models(HALF_MB).items():
        (folder / f"{name.replace(' ', '_')}.tflite").write_bytes(data)
    return folder


@pytest.mark.parametrize("case", MODEL_CASES)
def test_hostile_model_costs_a_small_multiple_of_its_size(hostile_dir: Path, case: str) -> None:
    path = hostile_dir / f"{case.replace(' ', '_')}.tflite"
    size = path.stat().st_size
    results = guarded(path)
    refusal = REFUSALS[case]
    for action, result in results.items():
        assert result["outcome"] == ("ok" if refusal is None else "ModelError"), (action, result)
        assert refusal is None or refusal in str(result["message"]), (action, result)
        # The file itself, its hash, the report: a few times its size, never its aliases.
        assert int(str(result["peak"])) < 3 * size + (16 << 20), (action, result)


@pytest.mark.parametrize("case", ["aliased tensor shape", "aliased operator"])
def test_larger_hostile_models_stop_at_the_table_cap(tmp_path: Path, case: str) -> None:
    path = tmp_path / "big.tflite"
    path.write_bytes(hostile_model(case, 8 << 20))
    for action, result in guarded(path).items():
        assert result["outcome"] == "ModelError", (action, result)
        assert "more than 1000000 tables" in str(result["message"]), (action, result)
        assert int(str(result["peak"])) < 3 * (8 << 20) + (16 << 20), (action, result)


def test_shape_rank_is_capped() -> None:
    with pytest.raises(ModelError, match="rank 17"):
        inspect_model(build(Parts(input_shape=(1,) * 17)))


def test_names_and_description_are_cut_short() -> None:
    report = inspect_model(build(Parts(input_name="n" * 100_000, description="d" * 100_000)))
    assert report.input is not None
    assert report.input.name == "n" * 256 + "…"
    assert len(report.description) == 1025
    assert report.task == "classification"


def test_memory_error_becomes_model_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def exhausted(*args: object) -> None:
        raise MemoryError

    monkeypatch.setattr(flatbuffer, "_tensor", exhausted)
    with pytest.raises(ModelError, match="MemoryError"):
        parse_model(build(Parts()))


def test_tables_match_the_schema_ai_edge_litert_ships() -> None:
    from ai_edge_litert import schema_py_generated as schema

    def by_value(enum: type) -> list[str]:
        names = {v: k for k, v in vars(enum).items() if not k.startswith("_")}
        assert sorted(names) == list(range(len(names)))
        return [names[i] for i in range(len(names))]

    assert list(BUILTIN_OPERATORS) == by_value(schema.BuiltinOperator)
    assert [t.upper() for t in TENSOR_TYPES] == by_value(schema.TensorType)


def test_model_size_is_checked_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(models, "MAX_MODEL_BYTES", 1000)
    path = tmp_path / "big.tflite"
    with path.open("wb") as handle:
        handle.truncate(1001)  # sparse: nothing to read if the size is checked first
    for read in (load_model, inspect_model):
        with pytest.raises(ModelError, match="larger than any supported model"):
            read(path)
    with pytest.raises(ModelError, match="larger than any supported model"):
        load_model(bytes(1001))


def test_labels_size_is_checked_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(labels, "MAX_LABELS_BYTES", 1000)
    path = tmp_path / "labels.txt"
    path.write_text("cat\n" * 251)
    with pytest.raises(LabelsError, match="a labels file has at most 1000"):
        load_labels(path)


def test_fifos_are_refused_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.tflite"
    os.mkfifo(fifo)
    readers: list[tuple[Callable[[Path], object], type[Exception]]] = [
        (load_model, ModelError),
        (inspect_model, ModelError),
        (load_labels, LabelsError),
    ]
    for read, error in readers:
        assert refused_without_blocking(fifo, read, error), read.__name__


def refused_without_blocking(
    fifo: Path, read: Callable[[Path], object], error: type[Exception]
) -> bool:
    """Whether `read` raised `error` for a FIFO nobody writes to, instead of waiting forever."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            read(fifo)
        except BaseException as err:  # handed to the test thread
            outcome.append(err)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():
        # Blocked in open(): a writer that closes at once lets it return.
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(10)
        return False
    return isinstance(outcome[0], error) and "regular file" in str(outcome[0])


def test_vectors_and_sizes_the_reader_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelError, match="a vector of 1025 items, more than 1024"):
        parse_model(build(Parts(output_aliases=1024)))
    monkeypatch.setattr(flatbuffer, "MAX_MODEL_BYTES", 100)
    with pytest.raises(ModelError, match="larger than any supported model"):
        parse_model(build(Parts()))
