"""The dispatcher spreads sources over executors (here two CPU ones) and sticks to its choice."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from custom_components.coral_vision.engine.errors import (
    EdgeTpuModelOnCpuError,
    ExecutorClosedError,
    QueueFullError,
)
from custom_components.coral_vision.engine.inference.delegate import BackendInfo
from custom_components.coral_vision.engine.inference.dispatcher import Dispatcher
from custom_components.coral_vision.engine.inference.executor import Executor
from custom_components.coral_vision.engine.models.model import Model, load_model

from .test_executor import blocked_pool

WAIT_S = 60.0


async def test_spreads_sources_and_sticks(tiny: Model, image_bytes: dict[str, bytes]) -> None:
    sources = [f"cam{i}" for i in range(4)]
    with Dispatcher.open(tiny, [None, None], num_threads=1) as dispatcher:
        first, second = dispatcher.executors
        for _ in range(3):
            for source in sources:
                result = await dispatcher.run(source, image_bytes["cat.bmp"])
                assert result.source_id == source
        assignments = dispatcher.assignments()
        stats = dispatcher.stats()
    assert Counter(assignments.values()) == {first: 2, second: 2}
    assert [s.frames_done for s in stats] == [6, 6]
    assert first.closed
    assert second.closed
    assert not [t for t in threading.enumerate() if t.name.startswith("coral-vision")]


def test_rebalances_when_an_executor_closes(tiny: Model, image_bytes: dict[str, bytes]) -> None:
    data = image_bytes["cat.bmp"]
    with Dispatcher.open(tiny, [None, None], num_threads=1) as dispatcher:
        first, second = dispatcher.executors
        for source in ("a", "b", "c", "d"):
            dispatcher.run_sync(source, data)
        moved = [s for s, e in dispatcher.assignments().items() if e is first]
        first.close()
        results = [dispatcher.submit(source, data).result(timeout=WAIT_S) for source in moved]
        assert [r.source_id for r in results] == moved
        assert set(dispatcher.assignments().values()) == {second}
        second.close()
        error = dispatcher.submit("a", data).exception(timeout=0)
    assert isinstance(error, ExecutorClosedError)


def test_new_source_goes_to_least_loaded(tiny: Model, image_bytes: dict[str, bytes]) -> None:
    with Dispatcher.open(tiny, [None, None, None], num_threads=1) as dispatcher:
        a, b, c = dispatcher.executors
        assert dispatcher.executor_for("x") is a
        assert dispatcher.executor_for("y") is b
        assert dispatcher.executor_for("x") is a
        dispatcher.forget("x")
        assert dispatcher.executor_for("z") is a
        assert dispatcher.executor_for("w") is c


def test_swap_on_every_executor(
    tiny: Model, ssd_model: Model, image_bytes: dict[str, bytes]
) -> None:
    changes: list[tuple[Executor, BackendInfo]] = []
    with Dispatcher.open(
        tiny, [None, None], num_threads=1, on_backend_change=lambda e, i: changes.append((e, i))
    ) as dispatcher:
        infos = dispatcher.swap_model(ssd_model)
        results = [dispatcher.run_sync(s, image_bytes["cat.bmp"]) for s in ("a", "b")]
        executors = dispatcher.executors
    assert [i.model_name for i in infos] == [ssd_model.name] * 2
    assert [r.task for r in results] == ["detection"] * 2
    assert {e for e, _ in changes} == set(executors)


def test_open_failure_closes_what_was_opened(tiny: Model, models_dir: Path) -> None:
    before = set(threading.enumerate())
    tpu_only = load_model(models_dir / "mobilenet_v1_0.25_128_quant_edgetpu.tflite")
    with pytest.raises(EdgeTpuModelOnCpuError):
        Dispatcher.open(tpu_only, [None, None])
    assert set(threading.enumerate()) == before
    with pytest.raises(ValueError, match="at least one"):
        Dispatcher([])


def test_on_demand_requests_go_to_the_shortest_queue_unassigned(
    tiny: Model, image_bytes: dict[str, bytes]
) -> None:
    data = image_bytes["cat.bmp"]
    with blocked_pool() as (pool, gate):
        executors = [Executor(tiny, pool=pool, on_demand_limit=1) for _ in range(2)]
        with Dispatcher(executors) as dispatcher:
            futures = [dispatcher.submit(f"action:{i}", data, on_demand=True) for i in range(3)]
            refused = futures[2].exception(timeout=0)
            depths = [e.queue_depth for e in executors]
            gate.set()
            results = [f.result(timeout=WAIT_S) for f in futures[:2]]
            later = dispatcher.run_sync("action:3", data, on_demand=True)
            assert dispatcher.assignments() == {}
        closed = dispatcher.submit("action:4", data, on_demand=True).exception(timeout=0)
    assert depths == [1, 1]
    assert isinstance(refused, QueueFullError)
    assert [r.source_id for r in results] == ["action:0", "action:1"]
    assert later.source_id == "action:3"
    assert isinstance(closed, ExecutorClosedError)
