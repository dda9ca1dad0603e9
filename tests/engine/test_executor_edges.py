"""The executor's less travelled paths: close with work in every state, a shut pool, odd failures."""

from __future__ import annotations

import dataclasses
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from custom_components.coral_vision.engine.errors import (
    DelegateError,
    EdgeTpuModelOnCpuError,
    ExecutorClosedError,
    ImageError,
    InferenceError,
    RequestTimeoutError,
)
from custom_components.coral_vision.engine.inference.delegate import BackendInfo
from custom_components.coral_vision.engine.inference.devices import EdgeTpu, list_edge_tpus
from custom_components.coral_vision.engine.inference.executor import Executor
from custom_components.coral_vision.engine.models.model import Model
from custom_components.coral_vision.engine.runtime import Runtime, load_runtime

from .fakes import FakeEdgeTpu, make_usb_tpu

# Generous: only there so that a bug fails the test instead of hanging it.
WAIT_S = 60.0


@dataclasses.dataclass
class Gate:
    """The real CPU runtime whose invoke() waits at a gate, or raises `error`, when told to."""

    runtime: Runtime
    entered: threading.Event
    open: threading.Event
    error: list[BaseException]


@pytest.fixture
def gate() -> Iterator[Gate]:
    real = load_runtime()
    entered, opened = threading.Event(), threading.Event()
    opened.set()
    errors: list[BaseException] = []

    class Interpreter:
        def __init__(self, **kwargs: Any) -> None:
            self._real = real.interpreter_factory(**kwargs)

        def invoke(self) -> None:
            entered.set()
            if not opened.wait(WAIT_S):
                raise RuntimeError("test gate never opened")
            if errors:
                raise errors.pop()
            self._real.invoke()

        def __getattr__(self, name: str) -> Any:
            return getattr(self._real, name)

    held = Gate(dataclasses.replace(real, interpreter_factory=Interpreter), entered, opened, errors)
    yield held
    opened.set()


def hold(gate: Gate) -> None:
    gate.entered.clear()
    gate.open.clear()


def test_a_swap_waiting_behind_a_running_frame_fails_when_closing(
    gate: Gate, tiny: Model, mobilenet: Model, photo: bytes
) -> None:
    executor = Executor(tiny, runtime=gate.runtime)
    try:
        hold(gate)
        running = executor.submit("cam", photo)
        assert gate.entered.wait(WAIT_S)
        swap = executor.submit_swap(mobilenet)
        executor.begin_close()
        assert isinstance(swap.exception(timeout=WAIT_S), ExecutorClosedError)
        gate.open.set()
    finally:
        executor.close()
    assert running.done()
    assert executor.model is tiny


def test_frames_wait_out_a_shut_pool_and_fail_at_close(tiny: Model, photo: bytes) -> None:
    pool = ThreadPoolExecutor(max_workers=1)
    executor = Executor(tiny, pool=pool)
    try:
        assert executor.run_sync("warm-up", photo).task == "classification"
        pool.shutdown(wait=True)
        waiting = [executor.submit(f"cam{i}", photo) for i in range(2)]
        assert not any(f.done() for f in waiting)  # nobody can prepare them, nothing fails yet
    finally:
        executor.close()
    assert all(isinstance(f.exception(timeout=0), ExecutorClosedError) for f in waiting)
    assert not [t for t in threading.enumerate() if t.name.startswith("coral-vision-infer")]


def test_a_frame_running_when_the_pool_shuts_fails_closed(
    gate: Gate, tiny: Model, photo: bytes
) -> None:
    pool = ThreadPoolExecutor(max_workers=1)
    with Executor(tiny, runtime=gate.runtime, pool=pool) as executor:
        hold(gate)
        running = executor.submit("cam", photo)
        assert gate.entered.wait(WAIT_S)
        pool.shutdown(wait=True)  # the frame is in the interpreter, not in the pool
        gate.open.set()
        assert isinstance(running.exception(timeout=WAIT_S), ExecutorClosedError)


def test_a_prepare_job_that_starts_after_close_does_nothing(tiny: Model, photo: bytes) -> None:
    pool = ThreadPoolExecutor(max_workers=1)
    started, release = threading.Event(), threading.Event()
    pool.submit(lambda: (started.set(), release.wait(WAIT_S)))
    assert started.wait(WAIT_S)
    executor = Executor(tiny, pool=pool)
    waiting = executor.submit("cam", photo)  # its prepare job queues behind the held one
    executor.close()
    assert isinstance(waiting.exception(timeout=0), ExecutorClosedError)
    release.set()
    pool.shutdown(wait=True)  # the prepare job runs now, finds the executor closed, and returns
    assert executor.stats().frames_done == 0


def test_a_frame_cancelled_before_it_is_prepared_costs_nothing(tiny: Model, photo: bytes) -> None:
    pool = ThreadPoolExecutor(max_workers=1)
    started, release = threading.Event(), threading.Event()
    pool.submit(lambda: (started.set(), release.wait(WAIT_S)))
    assert started.wait(WAIT_S)
    try:
        with Executor(tiny, pool=pool) as executor:
            cancelled = executor.submit("cam", photo)
            assert cancelled.cancel()
            release.set()
            pool.submit(lambda: None).result(WAIT_S)  # its prepare job ran, finding nothing
            assert executor.run_sync("other", photo).task == "classification"
            stats = executor.stats()
    finally:
        release.set()
        pool.shutdown(wait=True)
    assert (stats.frames_done, stats.frames_failed, stats.queue_depth) == (1, 0, 0)


def test_an_unexpected_interpreter_error_fails_only_its_frame(
    gate: Gate, tiny: Model, photo: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    changes: list[BackendInfo] = []
    with Executor(tiny, runtime=gate.runtime, on_backend_change=changes.append) as executor:
        gate.error.append(SystemError("error return without exception set"))
        error = executor.submit("cam", photo).exception(timeout=WAIT_S)
        after = executor.run_sync("cam", photo)
        stats = executor.stats()
    assert isinstance(error, InferenceError)
    assert "error return without exception set" in str(error)
    assert "unexpected error while invoking" in caplog.text
    assert after.backend == "CPU"
    assert changes == []  # the same interpreter goes on
    assert (stats.frames_failed, stats.frames_done) == (1, 1)


def test_a_frame_timing_out_inside_its_invoke_is_counted_once(
    gate: Gate, tiny: Model, photo: bytes
) -> None:
    with Executor(tiny, runtime=gate.runtime) as executor:
        hold(gate)
        late = executor.submit("cam", photo, timeout=0.2)
        assert gate.entered.wait(WAIT_S)
        assert isinstance(late.exception(timeout=WAIT_S), RequestTimeoutError)
        gate.open.set()  # the invoke ends after all: its result has nobody left to go to
        assert executor.run_sync("cam", photo).task == "classification"
        stats = executor.stats()
    assert (stats.frames_timed_out, stats.frames_done, stats.frames_failed) == (1, 1, 0)


def test_something_not_an_image_fails_its_request(tiny: Model, photo: bytes) -> None:
    with Executor(tiny) as executor:
        error = executor.submit("cam", 12345).exception(timeout=WAIT_S)  # type: ignore[arg-type]
        assert executor.run_sync("cam", photo).task == "classification"
    assert isinstance(error, ImageError)


def test_a_failing_backend_listener_does_not_stop_inference(
    tiny: Model, mobilenet: Model, photo: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[BackendInfo] = []

    def broken(info: BackendInfo) -> None:
        calls.append(info)
        raise RuntimeError("listener bug")

    with Executor(tiny, on_backend_change=broken) as executor:
        info = executor.swap_model(mobilenet)
        result = executor.run_sync("cam", photo)
    assert [c.model_name for c in calls] == [info.model_name] == [mobilenet.name]
    assert "on_backend_change failed" in caplog.text
    assert result.backend == "CPU"
    assert executor.model is mobilenet


@dataclasses.dataclass
class Rig:
    """A fake USB Edge TPU in a fake sysfs, listed through `list_tpus`."""

    fake: FakeEdgeTpu
    tpu: EdgeTpu
    usb_entry: Path
    sys_root: Path
    dev_root: Path
    listing_fails: bool = False

    def list_tpus(self) -> list[EdgeTpu]:
        if self.listing_fails:
            raise PermissionError(13, "Permission denied", str(self.sys_root))
        return list_edge_tpus(self.sys_root, self.dev_root)


@pytest.fixture
def rig(tmp_path: Path, tiny: Model) -> Iterator[Rig]:
    sys_root, dev_root = tmp_path / "sys", tmp_path / "dev"
    entry = make_usb_tpu(sys_root, "1-1")
    (tpu,) = list_edge_tpus(sys_root, dev_root)
    fake = FakeEdgeTpu(cpu_twin=tiny.content)
    yield Rig(fake, tpu, entry, sys_root, dev_root)
    fake.release()


def test_an_unreadable_device_list_means_the_cpu(
    rig: Rig, tiny_tpu: Model, tiny: Model, photo: bytes
) -> None:
    with Executor(
        tiny_tpu, rig.tpu, cpu_model=tiny, runtime=rig.fake.runtime(), list_tpus=rig.list_tpus
    ) as executor:
        assert executor.run_sync("cam", photo).backend == "Edge TPU (USB)"
        rig.fake.unplug()
        rig.listing_fails = True  # sysfs unreadable while the device resets
        lost = executor.submit("cam", photo).exception(timeout=WAIT_S)
        after = executor.run_sync("cam", photo)
    assert isinstance(lost, DelegateError)
    assert after.backend == "CPU"
    assert len(rig.fake.load_calls) == 1  # the TPU was not tried again without a listing


def test_frames_fail_at_once_between_reopen_attempts(
    rig: Rig, tiny_tpu: Model, photo: bytes
) -> None:
    with Executor(
        tiny_tpu, rig.tpu, runtime=rig.fake.runtime(), list_tpus=rig.list_tpus
    ) as executor:
        assert executor.run_sync("cam", photo).backend == "Edge TPU (USB)"
        rig.fake.unplug()
        shutil.rmtree(rig.usb_entry)
        assert isinstance(executor.submit("cam", photo).exception(timeout=WAIT_S), DelegateError)
        # Nothing can run the compiled model now; the next frames fail with the reason, without
        # another attempt to open it until the reopen interval has passed.
        errors = [executor.submit("cam", photo).exception(timeout=WAIT_S) for _ in range(3)]
        loads = len(rig.fake.load_calls)
    assert all(isinstance(e, EdgeTpuModelOnCpuError) for e in errors)
    assert loads == 1
