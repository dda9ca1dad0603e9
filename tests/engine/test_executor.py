"""The executor with real models and photos: results, coalescing, limits, swap and shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path

import pytest

from custom_components.coral_vision.engine.errors import (
    CoralVisionError,
    ExecutorClosedError,
    FrameSupersededError,
    ImageError,
    ModelError,
    QueueFullError,
    RequestTimeoutError,
)
from custom_components.coral_vision.engine.inference.delegate import BackendInfo
from custom_components.coral_vision.engine.inference.executor import Executor
from custom_components.coral_vision.engine.inference.stats import percentile
from custom_components.coral_vision.engine.models.model import Model
from custom_components.coral_vision.engine.results import FrameResult

# Generous: only there so that a bug fails the test instead of hanging it.
WAIT_S = 60.0


@contextmanager
def blocked_pool() -> Iterator[tuple[ThreadPoolExecutor, threading.Event]]:
    """A one-thread prepare pool held busy until the event is set: frames stay WAITING."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-pool")
    gate, started = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        gate.wait(WAIT_S)

    pool.submit(hold)
    started.wait(WAIT_S)
    try:
        yield pool, gate
    finally:
        gate.set()
        pool.shutdown(wait=True)


def outcome(future: Future[FrameResult]) -> FrameResult | BaseException:
    error = future.exception(timeout=WAIT_S)
    return error if error is not None else future.result()


async def test_detects_person_through_asyncio_api(
    ssd_model: Model, image_bytes: dict[str, bytes]
) -> None:
    with Executor(ssd_model, threshold=0.5) as executor:
        result = await executor.run("door", image_bytes["grace_hopper.bmp"])
    assert result.source_id == "door"
    assert result.task == "detection"
    assert result.image_size == (512, 600)
    assert result.backend == "CPU"
    assert result.inference_ms > 0
    assert result.preprocess_ms > 0
    assert result.classes == ()
    best = result.detections[0]
    assert best.label == "person"
    assert best.score == pytest.approx(0.71, abs=0.02)
    assert 0 <= best.box.xmin < best.box.xmax <= 512
    assert 0 <= best.box.ymin < best.box.ymax <= 600
    assert "tie" in {d.label for d in result.detections}


def test_submit_from_another_thread(ssd_model: Model, image_bytes: dict[str, bytes]) -> None:
    futures: list[Future[FrameResult]] = []
    with Executor(ssd_model, threshold=0.5) as executor:
        thread = threading.Thread(
            target=lambda: futures.append(executor.submit("yard", image_bytes["cat.bmp"]))
        )
        thread.start()
        thread.join()
        result = futures[0].result(timeout=WAIT_S)
        blocking = executor.run_sync("hall", image_bytes["grace_hopper.bmp"])
    assert [d.label for d in result.detections] == ["cat"]
    assert result.detections[0].score == pytest.approx(0.72, abs=0.02)
    assert blocking.detections[0].label == "person"


def test_classifies_through_executor(mobilenet: Model, image_bytes: dict[str, bytes]) -> None:
    with Executor(mobilenet, top_k=3, threshold=0.0) as executor:
        result = executor.run_sync("cam", image_bytes["cat.bmp"])
    assert result.task == "classification"
    assert result.detections == ()
    assert result.classes[0].label == "Egyptian cat"
    assert result.classes[0].score == pytest.approx(0.79, abs=0.03)
    assert len(result.classes) == 3


def test_newer_frame_supersedes_waiting_one(tiny: Model, image_bytes: dict[str, bytes]) -> None:
    frames = [image_bytes[name] for name in ("cat.bmp", "bird.bmp", "sunflower.bmp", "parrot.jpg")]
    with blocked_pool() as (pool, gate), Executor(tiny, pool=pool) as executor:
        futures = [executor.submit("cam", data) for data in frames]
        other = executor.submit("porch", image_bytes["cat.bmp"])
        # Superseding happens at submit time, while the frames still wait.
        for future in futures[:-1]:
            assert isinstance(future.exception(timeout=0), FrameSupersededError)
        assert not futures[-1].done()
        assert executor.queue_depth == 2
        gate.set()
        newest = futures[-1].result(timeout=WAIT_S)
        assert other.result(timeout=WAIT_S).source_id == "porch"
        stats = executor.stats()
    assert newest.classes[0].label == "macaw"
    assert stats.frames_dropped == 3
    assert stats.frames_done == 2


def test_overload_stays_bounded(tiny: Model, image_bytes: dict[str, bytes]) -> None:
    queue_size, sources, per_source = 4, 20, 10
    total = sources * per_source  # ten times what the queue and the worker can hold at once
    data = image_bytes["cat_720p.jpg"]
    futures: list[Future[FrameResult]] = []
    depths: list[int] = []
    tracemalloc.start()
    try:
        with Executor(tiny, queue_size=queue_size, num_threads=1) as executor:
            baseline = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()

            def feed(offset: int) -> None:
                for _ in range(per_source):
                    for s in range(offset, sources, 2):
                        futures.append(executor.submit(f"cam{s}", data))
                        depths.append(executor.queue_depth)

            feeders = [threading.Thread(target=feed, args=(n,)) for n in (0, 1)]
            for feeder in feeders:
                feeder.start()
            for feeder in feeders:
                feeder.join()
            _, not_done = wait(futures, timeout=WAIT_S)
            peak = tracemalloc.get_traced_memory()[1] - baseline
            stats = executor.stats()
            after = executor.run_sync("late", data)
    finally:
        tracemalloc.stop()
    assert not not_done
    assert after.source_id == "late"
    assert len(futures) == total
    assert max(depths) <= queue_size
    assert stats.queue_peak <= queue_size
    kinds = {type(f.exception() or f.result()) for f in futures}
    assert kinds <= {FrameResult, FrameSupersededError, QueueFullError}
    assert stats.frames_rejected > 0
    assert stats.frames_done > 0
    assert (
        stats.frames_done + stats.frames_dropped + stats.frames_rejected + stats.frames_failed
        == total
    )
    # Held frames are 128x128x3 tensors (48 KiB) plus decode buffers; keeping all 200 would
    # need well over 10 MB, the bounded queue keeps a handful.
    assert peak < 4_000_000, f"traced memory grew by {peak} bytes"


def test_request_timeout(tiny: Model, image_bytes: dict[str, bytes]) -> None:
    with blocked_pool() as (pool, gate), Executor(tiny, pool=pool) as executor:
        late = executor.submit("cam", image_bytes["cat.bmp"], timeout=0.05)
        error = late.exception(timeout=WAIT_S)
        assert isinstance(error, RequestTimeoutError)
        assert "cam" in str(error)
        assert executor.queue_depth == 0
        gate.set()
        assert executor.run_sync("cam", image_bytes["cat.bmp"]).task == "classification"
        assert executor.stats().frames_timed_out == 1


async def test_asyncio_cancel_frees_queue_slot(tiny: Model, image_bytes: dict[str, bytes]) -> None:
    with blocked_pool() as (pool, gate), Executor(tiny, pool=pool, queue_size=1) as executor:
        task = asyncio.ensure_future(executor.run("cam", image_bytes["cat.bmp"]))
        await asyncio.sleep(0)
        assert executor.queue_depth == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert executor.queue_depth == 0
        gate.set()
        result = await executor.run("other", image_bytes["cat.bmp"])
    assert result.source_id == "other"


def test_corrupt_image_fails_only_its_request(tiny: Model, image_bytes: dict[str, bytes]) -> None:
    good = image_bytes["cat.bmp"]
    truncated = image_bytes["parrot.jpg"][:2000]
    with Executor(tiny) as executor:
        bad = executor.submit("broken", b"this is not an image")
        cut = executor.submit("cut", truncated)
        empty = executor.submit("empty", b"")
        fine = executor.submit("fine", good)
        assert isinstance(bad.exception(timeout=WAIT_S), ImageError)
        assert isinstance(cut.exception(timeout=WAIT_S), ImageError)
        assert isinstance(empty.exception(timeout=WAIT_S), ImageError)
        assert fine.result(timeout=WAIT_S).task == "classification"
        assert executor.run_sync("broken", good).task == "classification"
        assert executor.stats().frames_failed == 3


def test_model_failing_in_the_interpreter_is_a_clear_error(
    tiny: Model, models_dir: Path, image_bytes: dict[str, bytes]
) -> None:
    # With ai-edge-litert this model already fails when its tensors are allocated.
    content = (models_dir / "invalid" / "model_invoking_error.tflite").read_bytes()
    broken = dataclasses.replace(tiny, content=content, name="model_invoking_error")
    before = set(threading.enumerate())
    with pytest.raises(ModelError, match="model_invoking_error"):
        Executor(broken)
    assert set(threading.enumerate()) == before
    with Executor(tiny) as executor:
        assert executor.run_sync("cam", image_bytes["cat.bmp"]).task == "classification"


def test_hot_swap_runs_queued_frames_on_new_model(
    ssd_model: Model, mobilenet: Model, image_bytes: dict[str, bytes]
) -> None:
    hold, holding = threading.Event(), threading.Event()
    changes: list[tuple[str, BackendInfo]] = []

    def on_change(info: BackendInfo) -> None:
        changes.append((threading.current_thread().name, info))
        if len(changes) == 1:
            holding.set()
            hold.wait(WAIT_S)  # keeps the worker busy while frames queue up

    pool = ThreadPoolExecutor(max_workers=1)
    with Executor(ssd_model, on_backend_change=on_change, pool=pool) as executor:
        first = executor.submit_swap(dataclasses.replace(ssd_model, name="ssd-again"))
        assert holding.wait(WAIT_S)
        first.result(timeout=WAIT_S)
        queued = [executor.submit(name, image_bytes[name]) for name in ("cat.bmp", "parrot.jpg")]
        # One pool thread runs jobs in order: past this, both frames are prepared for the
        # detection model's 300x300 input and must be prepared again after the swap.
        pool.submit(lambda: None).result(timeout=WAIT_S)
        second = executor.submit_swap(mobilenet)
        hold.set()
        info = second.result(timeout=WAIT_S)
        results = [f.result(timeout=WAIT_S) for f in queued]
        assert executor.model is mobilenet
        stats = executor.stats()
    assert info.model_name == mobilenet.name
    assert [r.task for r in results] == ["classification", "classification"]
    assert results[0].classes[0].label == "Egyptian cat"
    assert results[1].classes[0].label == "macaw"
    pool.shutdown(wait=True)
    assert [info.model_name for _, info in changes] == ["ssd-again", mobilenet.name]
    assert all(name.startswith("coral-vision-infer") for name, _ in changes)
    assert stats.backend_changes == 2
    assert stats.backend is not None
    assert stats.backend.model_name == mobilenet.name


async def test_async_swap_model(
    tiny: Model, ssd_model: Model, image_bytes: dict[str, bytes]
) -> None:
    with Executor(tiny) as executor:
        assert (await executor.run("cam", image_bytes["cat.bmp"])).task == "classification"
        info = await executor.async_swap_model(ssd_model)
        result = await executor.run("cam", image_bytes["cat.bmp"])
    assert info.model_name == ssd_model.name
    assert result.task == "detection"
    assert result.detections[0].label == "cat"


def test_failed_swap_keeps_the_old_model(tiny: Model, image_bytes: dict[str, bytes]) -> None:
    broken = dataclasses.replace(tiny, content=b"\0\0\0\0TFL3" + b"\0" * 64, name="broken")
    with Executor(tiny) as executor:
        with pytest.raises(ModelError):
            executor.swap_model(broken)
        assert executor.model is tiny
        assert executor.run_sync("cam", image_bytes["cat.bmp"]).task == "classification"


def test_close_with_requests_in_flight(ssd_model: Model, image_bytes: dict[str, bytes]) -> None:
    executor = Executor(ssd_model, queue_size=64)
    futures = [
        executor.submit(f"cam{i}", image_bytes[name])
        for i, name in enumerate(["grace_hopper.bmp", "cat.bmp", "kite_and_cold.jpg"] * 8)
    ]
    executor.close()
    assert all(f.done() for f in futures)
    for future in futures:
        error = future.exception()
        assert error is None or isinstance(error, ExecutorClosedError)
    assert any(isinstance(f.exception(), ExecutorClosedError) for f in futures)
    assert not [t for t in threading.enumerate() if t.name.startswith("coral-vision")]
    executor.close()  # idempotent
    late = executor.submit("cam", image_bytes["cat.bmp"])
    assert isinstance(late.exception(timeout=0), ExecutorClosedError)
    assert isinstance(executor.submit_swap(ssd_model).exception(timeout=0), ExecutorClosedError)
    assert executor.closed


async def test_awaiting_caller_gets_closed_error(
    tiny: Model, image_bytes: dict[str, bytes]
) -> None:
    with blocked_pool() as (pool, _gate):
        executor = Executor(tiny, pool=pool)
        task = asyncio.ensure_future(executor.run("cam", image_bytes["cat.bmp"]))
        await asyncio.sleep(0)
        await asyncio.get_running_loop().run_in_executor(None, executor.close)
        with pytest.raises(ExecutorClosedError):
            await task


def test_stats_values(tiny: Model, image_bytes: dict[str, bytes]) -> None:
    with blocked_pool() as (pool, gate), Executor(tiny, pool=pool, queue_size=2) as executor:
        initial = executor.stats()
        superseded = executor.submit("a", image_bytes["bird.bmp"])
        kept = executor.submit("a", image_bytes["cat.bmp"])
        other = executor.submit("b", b"garbage")
        refused = executor.submit("c", image_bytes["cat.bmp"])
        waiting = executor.stats()
        gate.set()
        outcomes = [outcome(f) for f in (superseded, kept, other, refused)]
        for name in ("cat.bmp", "parrot.jpg", "sunflower.bmp"):
            executor.run_sync("d", image_bytes[name])
        final = executor.stats()
    assert initial.frames_done == initial.frames_dropped == initial.frames_failed == 0
    assert initial.inference_p50_ms is None
    assert initial.backend is not None
    assert initial.backend.kind == "cpu"
    assert waiting.queue_depth == 2
    assert waiting.queue_limit == 2
    assert [type(o) for o in outcomes] == [
        FrameSupersededError,
        FrameResult,
        ImageError,
        QueueFullError,
    ]
    assert final.frames_done == 4
    assert final.frames_dropped == 1
    assert final.frames_failed == 1
    assert final.frames_rejected == 1
    assert final.frames_timed_out == 0
    assert final.queue_depth == 0
    assert final.queue_peak == 2
    assert final.backend_changes == 0
    assert final.inference_p50_ms is not None
    assert final.inference_p95_ms is not None
    assert 0 < final.inference_p50_ms <= final.inference_p95_ms
    with pytest.raises(dataclasses.FrozenInstanceError):
        final.frames_done = 0  # type: ignore[misc]


def test_percentile() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0], 0.95) == 3.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile(list(reversed(values)), 1.0) == 100.0


def test_errors_are_engine_errors(tiny: Model) -> None:
    with pytest.raises(ValueError, match="queue_size"):
        Executor(tiny, queue_size=0)
    for error in (FrameSupersededError, QueueFullError, RequestTimeoutError, ExecutorClosedError):
        assert issubclass(error, CoralVisionError)
