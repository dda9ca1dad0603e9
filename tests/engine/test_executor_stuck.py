"""A stuck Edge TPU (faked): one stuck thread at most, the CPU meanwhile, the TPU back after."""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from custom_components.coral_vision.engine.errors import (
    DelegateError,
    ExecutorClosedError,
    InferenceError,
    RequestTimeoutError,
)
from custom_components.coral_vision.engine.inference import lifecycle as executor_module
from custom_components.coral_vision.engine.inference.delegate import BackendInfo, FallbackReason
from custom_components.coral_vision.engine.inference.devices import EdgeTpu, list_edge_tpus
from custom_components.coral_vision.engine.inference.executor import Executor
from custom_components.coral_vision.engine.inference.preparation import pool_size
from custom_components.coral_vision.engine.models.model import Model
from custom_components.coral_vision.engine.results import FrameResult
from custom_components.coral_vision.engine.runtime import load_runtime

from .fakes import FakeEdgeTpu, make_usb_tpu

WAIT_S = 60.0
HANG = 0.5  # the hang limit these tests use: short, but far above a CPU invoke (~2 ms)


@dataclasses.dataclass
class Rig:
    """A fake USB Edge TPU in a fake sysfs, and the backends the executor reported."""

    fake: FakeEdgeTpu
    sys_root: Path
    dev_root: Path
    changes: list[BackendInfo]

    def list_tpus(self) -> list[EdgeTpu]:
        return list_edge_tpus(self.sys_root, self.dev_root)

    def open(self, model: Model, cpu_model: Model, **options: Any) -> Executor:
        return Executor(
            model,
            self.list_tpus()[0],
            cpu_model=cpu_model,
            runtime=self.fake.runtime(),
            list_tpus=self.list_tpus,
            on_backend_change=self.changes.append,
            hang_limit=HANG,
            **options,
        )


@pytest.fixture
def rig(tmp_path: Path, tiny: Model) -> Iterator[Rig]:
    sys_root, dev_root = tmp_path / "sys", tmp_path / "dev"
    make_usb_tpu(sys_root, "1-1", address=(1, 4))
    fake = FakeEdgeTpu(cpu_twin=tiny.content)
    yield Rig(fake, sys_root, dev_root, [])
    fake.release()
    fake.unblock_loads()


def workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("coral-vision-infer")]


def ours() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("coral-vision")]


def warm_up(executor: Executor, photo: bytes) -> None:
    """Run frames from several sources at once, so the prepare pool has all its threads."""
    futures = [executor.submit(f"warm-{i}", photo) for i in range(2 * pool_size())]
    for future in futures:
        future.result(timeout=WAIT_S)


def until(check: Callable[[], bool], what: str) -> None:
    """Wait for a thread of the executor to make `check` true."""
    give_up = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < give_up, f"never happened: {what}"
        time.sleep(0.01)


def runs_on(executor: Executor, photo: bytes, label: str) -> Callable[[], bool]:
    def check() -> bool:
        future = executor.submit("probe", photo, timeout=WAIT_S)
        return future.exception(timeout=WAIT_S) is None and future.result().backend == label

    return check


def test_a_hung_tpu_leaves_one_stuck_thread_and_runs_on_the_cpu(
    rig: Rig, tiny_tpu: Model, tiny: Model, photo: bytes
) -> None:
    with rig.open(tiny_tpu, tiny) as executor:
        warm_up(executor, photo)
        baseline = threading.active_count()
        rig.fake.hang()
        stuck = executor.submit("cam", photo).exception(timeout=WAIT_S)
        assert isinstance(stuck, DelegateError)
        assert "stopped responding" in str(stuck)
        # Ten hang limits of frames: before, each one opened the TPU again and hung a new thread.
        peak, outcomes = baseline, []
        give_up = time.monotonic() + 10 * HANG
        while time.monotonic() < give_up:
            future = executor.submit("cam", photo)
            error = future.exception(timeout=WAIT_S)
            outcomes.append(error or future.result())
            peak = max(peak, threading.active_count())
        stuck_workers = len(workers())
        info = executor.backend_info
        assert rig.fake.stuck == 1

        rig.fake.release()  # the stuck invoke returns: the TPU is tried again
        until(runs_on(executor, photo, "Edge TPU (USB)"), "back on the Edge TPU")
    assert peak <= baseline + 2, f"{peak - baseline} more threads"
    assert stuck_workers == 2  # the stuck one and the one running on the CPU
    results = [o for o in outcomes if isinstance(o, FrameResult)]
    assert len(results) >= 3
    assert {r.backend for r in results} == {"CPU"}
    assert len(rig.fake.load_calls) == 2, "not reopened while the old invoke was stuck"
    assert info is not None
    assert info.kind == "cpu"
    assert info.fallback_reason is FallbackReason.HUNG
    assert "stopped responding" in info.detail
    assert [(i.kind, i.fallback_reason) for i in rig.changes] == [
        ("cpu", FallbackReason.HUNG),
        ("edgetpu-usb", None),
    ]
    until(lambda: not ours(), "every thread ended")


@pytest.mark.parametrize("how", ["another-port", "new-address"])
def test_a_hung_tpu_that_enumerates_again_is_reopened(
    rig: Rig,
    tiny_tpu: Model,
    tiny: Model,
    photo: bytes,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    monkeypatch.setattr(executor_module, "RECHECK_INTERVAL_S", 0.05, raising=False)
    with rig.open(tiny_tpu, tiny) as executor:
        executor.run_sync("cam", photo)
        rig.fake.hang()
        assert isinstance(executor.submit("cam", photo).exception(timeout=WAIT_S), DelegateError)
        until(runs_on(executor, photo, "CPU"), "on the CPU")
        time.sleep(10 * 0.05)  # several looks at the bus: the same device, still hung
        assert rig.changes[-1].fallback_reason is FallbackReason.HUNG
        # A USB reset: the accelerator enumerates again, the stuck call stays stuck.
        usb = rig.sys_root / "bus" / "usb" / "devices"
        if how == "another-port":
            shutil.rmtree(usb / "1-1")
            make_usb_tpu(rig.sys_root, "1-2")
        else:
            make_usb_tpu(rig.sys_root, "1-1", address=(1, 5))
        rig.fake.reenumerate()
        until(runs_on(executor, photo, "Edge TPU (USB)"), "on the new Edge TPU")
        assert rig.fake.stuck == 1
        rig.fake.release()
    assert [(i.kind, i.fallback_reason) for i in rig.changes] == [
        ("cpu", FallbackReason.HUNG),
        ("edgetpu-usb", None),
    ]
    until(lambda: not ours(), "every thread ended")


def test_a_reopen_stuck_in_load_delegate_falls_back_to_the_cpu(
    rig: Rig, tiny_tpu: Model, tiny: Model, photo: bytes
) -> None:
    with rig.open(tiny_tpu, tiny) as executor:
        executor.run_sync("cam", photo)
        rig.fake.unplug()  # invokes fail, yet the device stays listed: it is reopened
        rig.fake.block_loads()
        assert isinstance(executor.submit("cam", photo).exception(timeout=WAIT_S), DelegateError)
        assert rig.fake.loading.wait(WAIT_S)
        during = executor.submit("cam", photo, timeout=10 * HANG)
        result = during.exception(timeout=WAIT_S) or during.result()
        info = executor.backend_info
        rig.fake.replug()
        rig.fake.unblock_loads()
        until(runs_on(executor, photo, "Edge TPU (USB)"), "back on the Edge TPU")
    assert isinstance(result, FrameResult), result
    assert result.backend == "CPU"
    assert info is not None
    assert info.fallback_reason is FallbackReason.HUNG
    until(lambda: not ours(), "every thread ended")


def test_close_returns_within_the_hang_limit_while_a_reopen_is_stuck(
    rig: Rig, tiny_tpu: Model, tiny: Model, photo: bytes
) -> None:
    executor = rig.open(tiny_tpu, tiny)
    executor.run_sync("cam", photo)
    rig.fake.unplug()
    rig.fake.block_loads()
    assert isinstance(executor.submit("cam", photo).exception(timeout=WAIT_S), DelegateError)
    assert rig.fake.loading.wait(WAIT_S)
    waiting = executor.submit("later", photo)
    started = time.monotonic()
    executor.close()
    took = time.monotonic() - started
    changes, stats = list(rig.changes), executor.stats()
    left = ours()
    assert isinstance(waiting.exception(timeout=0), ExecutorClosedError)
    rig.fake.unblock_loads()  # the stuck call returns: its thread ends without a trace
    for thread in left:
        thread.join(WAIT_S)
    assert took < HANG + 3, f"close() took {took:.1f} s"
    assert [t.name for t in left] == ["coral-vision-infer-usb:0"]
    assert left[0].daemon
    assert not [t for t in left if t.is_alive()]
    assert rig.changes == changes, "no backend change reported after close()"
    assert executor.stats() == stats
    assert not ours()


def test_a_stuck_cpu_invoke_is_not_abandoned_twice(tiny: Model, photo: bytes) -> None:
    real = load_runtime()
    slow, gate = threading.Event(), threading.Event()

    class Interpreter:
        def __init__(self, **kwargs: Any) -> None:
            self._real = real.interpreter_factory(**kwargs)

        def invoke(self) -> None:
            if slow.is_set():
                gate.wait(WAIT_S)
            self._real.invoke()

        def __getattr__(self, name: str) -> Any:
            return getattr(self._real, name)

    runtime = dataclasses.replace(real, interpreter_factory=Interpreter)
    with Executor(tiny, runtime=runtime, hang_limit=HANG) as executor:
        slow.set()
        errors = [
            executor.submit(name, photo).exception(timeout=WAIT_S) for name in ("first", "second")
        ]
        queued: Future[FrameResult] = executor.submit("third", photo, timeout=2 * HANG)
        late = queued.exception(timeout=WAIT_S)
        threads = len(workers())
        slow.clear()
        gate.set()
        after = executor.run_sync("cam", photo)
    assert all(isinstance(e, InferenceError) for e in errors), errors
    assert "stopped responding" in str(errors[1])
    assert isinstance(late, RequestTimeoutError)
    assert threads == 2  # the first stuck worker and the second, waited for rather than replaced
    assert after.backend == "CPU"
    until(lambda: not ours(), "every thread ended")


def test_a_stuck_invoke_that_ends_in_an_error_brings_the_tpu_back(
    tmp_path: Path, tiny_tpu: Model, tiny: Model, photo: bytes
) -> None:
    sys_root, dev_root = tmp_path / "sys", tmp_path / "dev"
    make_usb_tpu(sys_root, "1-1")
    # libusb gives up on the stuck transfer after a while: the invoke raises instead of returning.
    rig = Rig(FakeEdgeTpu(cpu_twin=tiny.content, hang_timeout=4 * HANG), sys_root, dev_root, [])
    with rig.open(tiny_tpu, tiny) as executor:
        executor.run_sync("cam", photo)
        rig.fake.hang()
        assert isinstance(executor.submit("cam", photo).exception(timeout=WAIT_S), DelegateError)
        until(runs_on(executor, photo, "CPU"), "on the CPU")
        rig.fake.reenumerate()  # new interpreters run; the stuck invoke stays stuck until it fails
        until(runs_on(executor, photo, "Edge TPU (USB)"), "back on the Edge TPU")
        assert rig.fake.stuck == 0
    assert [(i.kind, i.fallback_reason) for i in rig.changes] == [
        ("cpu", FallbackReason.HUNG),
        ("edgetpu-usb", None),
    ]
    until(lambda: not ours(), "every thread ended")


def test_a_swap_stuck_opening_the_tpu_fails_and_the_cpu_takes_over(
    rig: Rig, tiny_tpu: Model, tiny: Model, photo: bytes
) -> None:
    with rig.open(tiny_tpu, tiny) as executor:
        executor.run_sync("cam", photo)
        rig.fake.block_loads()
        swap = executor.submit_swap(tiny_tpu, tiny)
        error = swap.exception(timeout=WAIT_S)
        result = executor.run_sync("cam", photo)
        rig.fake.unblock_loads()
        until(runs_on(executor, photo, "Edge TPU (USB)"), "back on the Edge TPU")
    assert isinstance(error, DelegateError)
    assert "usb:0" in str(error)
    assert "stopped responding" in str(error)
    assert result.backend == "CPU"
    assert [(i.kind, i.fallback_reason) for i in rig.changes] == [
        ("cpu", FallbackReason.HUNG),
        ("edgetpu-usb", None),
    ]
    until(lambda: not ours(), "every thread ended")


def test_close_fails_a_swap_stuck_opening_the_tpu(
    rig: Rig, tiny_tpu: Model, tiny: Model, photo: bytes
) -> None:
    executor = rig.open(tiny_tpu, tiny)
    executor.run_sync("cam", photo)
    rig.fake.block_loads()
    swap = executor.submit_swap(tiny_tpu, tiny)
    assert rig.fake.loading.wait(WAIT_S)
    started = time.monotonic()
    executor.close()
    took = time.monotonic() - started
    left = ours()
    rig.fake.unblock_loads()
    for thread in left:
        thread.join(WAIT_S)
    # The supervisor may give up on the open first (a DelegateError), else close() does.
    assert isinstance(swap.exception(timeout=0), ExecutorClosedError | DelegateError)
    assert took < HANG + 3, f"close() took {took:.1f} s"
    assert not ours()
