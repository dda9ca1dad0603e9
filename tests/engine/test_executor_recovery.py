"""The executor's watchdog: an unplugged or hung Edge TPU (faked), a model failing on the CPU."""

from __future__ import annotations

import dataclasses
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from custom_components.coral_vision.engine.errors import (
    DelegateError,
    ExecutorClosedError,
    InferenceError,
)
from custom_components.coral_vision.engine.inference.delegate import BackendInfo
from custom_components.coral_vision.engine.inference.devices import EdgeTpu, list_edge_tpus
from custom_components.coral_vision.engine.inference.executor import Executor
from custom_components.coral_vision.engine.models.model import Model
from custom_components.coral_vision.engine.runtime import Runtime, load_runtime

from .fakes import FakeEdgeTpu, make_usb_tpu

WAIT_S = 60.0


@dataclasses.dataclass
class Rig:
    """A fake USB Edge TPU in a fake sysfs, and what the executor reported."""

    fake: FakeEdgeTpu
    tpu: EdgeTpu
    usb_entry: Path
    list_tpus: Callable[[], list[EdgeTpu]]
    changes: list[tuple[str, BackendInfo]]

    def on_change(self, info: BackendInfo) -> None:
        self.changes.append((threading.current_thread().name, info))

    def unplug(self) -> None:
        """Take the accelerator off the bus: invokes fail and sysfs no longer lists it."""
        self.fake.unplug()
        shutil.rmtree(self.usb_entry)


@pytest.fixture
def rig(tmp_path: Path, tiny: Model) -> Iterator[Rig]:
    sys_root, dev_root = tmp_path / "sys", tmp_path / "dev"
    entry = make_usb_tpu(sys_root, "1-1")
    tpus = list_edge_tpus(sys_root, dev_root)
    assert [t.device for t in tpus] == ["usb:0"]
    fake = FakeEdgeTpu(cpu_twin=tiny.content)
    yield Rig(fake, tpus[0], entry, lambda: list_edge_tpus(sys_root, dev_root), [])
    fake.release()


def open_on_tpu(rig: Rig, model: Model, cpu_model: Model, **options: Any) -> Executor:
    return Executor(
        model,
        rig.tpu,
        cpu_model=cpu_model,
        runtime=rig.fake.runtime(),
        list_tpus=rig.list_tpus,
        on_backend_change=rig.on_change,
        **options,
    )


def test_unplugged_tpu_falls_back_to_cpu(
    rig: Rig, tiny_tpu: Model, tiny: Model, image_bytes: dict[str, bytes]
) -> None:
    photo = image_bytes["parrot.jpg"]
    with open_on_tpu(rig, tiny_tpu, tiny) as executor:
        assert executor.backend_info is not None
        assert executor.backend_info.kind == "edgetpu-usb"
        on_tpu = executor.run_sync("cam", photo)
        assert on_tpu.backend == "Edge TPU (USB)"
        rig.unplug()
        lost = executor.submit("cam", photo)
        error = lost.exception(timeout=WAIT_S)
        assert isinstance(error, DelegateError)
        assert "usb:0" in str(error)
        after = [executor.run_sync(f"cam{i}", photo) for i in range(3)]
        stats = executor.stats()
    assert [r.backend for r in after] == ["CPU"] * 3
    assert after[0].classes == on_tpu.classes  # the CPU twin computes the same thing
    assert [info.kind for _, info in rig.changes] == ["cpu"]
    assert rig.changes[0][1].model_name == tiny.name
    assert rig.changes[0][0].startswith("coral-vision-infer")
    assert stats.backend is not None
    assert stats.backend.kind == "cpu"
    assert stats.backend_changes == 1
    assert stats.frames_failed == 1
    assert stats.frames_done == 4


def test_tpu_listed_again_is_reopened(
    rig: Rig, tiny_tpu: Model, tiny: Model, image_bytes: dict[str, bytes]
) -> None:
    with open_on_tpu(rig, tiny_tpu, tiny) as executor:
        rig.fake.unplug()
        error = executor.submit("cam", image_bytes["cat.bmp"]).exception(timeout=WAIT_S)
        assert isinstance(error, DelegateError)
        rig.fake.replug()  # a USB reset: the same device string comes back
        result = executor.run_sync("cam", image_bytes["cat.bmp"])
    assert result.backend == "Edge TPU (USB)"
    assert [info.kind for _, info in rig.changes] == ["edgetpu-usb"]
    assert len(rig.fake.load_calls) == 2


def test_hung_invoke_is_abandoned_and_replaced(
    rig: Rig, tiny_tpu: Model, tiny: Model, image_bytes: dict[str, bytes]
) -> None:
    photo = image_bytes["cat.bmp"]
    with open_on_tpu(rig, tiny_tpu, tiny, hang_limit=1.0) as executor:
        executor.run_sync("warm-up", photo)
        rig.fake.hang()
        stuck = executor.submit("cam", photo)
        assert rig.fake.blocked.wait(WAIT_S)
        shutil.rmtree(rig.usb_entry)  # the hung accelerator is gone from the bus too
        error = stuck.exception(timeout=WAIT_S)
        assert isinstance(error, DelegateError)
        assert "stopped responding" in str(error)
        later = executor.run_sync("cam", photo)
        names = [t.name for t in threading.enumerate() if t.name.startswith("coral-vision-infer")]
        # Let the abandoned thread out of its invoke so that close() can join it.
        rig.fake.release()
    assert later.backend == "CPU"
    assert len(names) == 2  # the abandoned worker and its replacement
    assert [info.kind for _, info in rig.changes] == ["cpu"]
    assert not [t for t in threading.enumerate() if t.name.startswith("coral-vision")]


def test_close_does_not_wait_forever_for_a_hung_invoke(
    rig: Rig, tiny_tpu: Model, tiny: Model, image_bytes: dict[str, bytes]
) -> None:
    executor = open_on_tpu(rig, tiny_tpu, tiny, hang_limit=0.5)
    rig.fake.hang()
    stuck = executor.submit("cam", image_bytes["cat.bmp"])
    assert rig.fake.blocked.wait(WAIT_S)
    executor.close()
    assert isinstance(stuck.exception(timeout=0), ExecutorClosedError)
    hung = [t for t in threading.enumerate() if t.name.startswith("coral-vision")]
    assert len(hung) == 1
    assert hung[0].daemon
    rig.fake.release()
    hung[0].join(WAIT_S)
    assert not hung[0].is_alive()


def failing_cpu_runtime(failing: threading.Event) -> tuple[Runtime, list[Any]]:
    """The real runtime, whose interpreters' invoke() fails while `failing` is set."""
    real = load_runtime()
    built: list[Any] = []

    class Interpreter:
        def __init__(self, **kwargs: Any) -> None:
            self._real = real.interpreter_factory(**kwargs)
            built.append(self)

        def invoke(self) -> None:
            if failing.is_set():
                raise RuntimeError("Node number 0 (FakeOp) failed to invoke.")
            self._real.invoke()

        def __getattr__(self, name: str) -> Any:
            return getattr(self._real, name)

    return dataclasses.replace(real, interpreter_factory=Interpreter), built


def test_model_failing_at_invoke_on_cpu_fails_only_its_requests(
    tiny: Model, image_bytes: dict[str, bytes]
) -> None:
    failing = threading.Event()
    runtime, built = failing_cpu_runtime(failing)
    changes: list[BackendInfo] = []
    with Executor(tiny, runtime=runtime, on_backend_change=changes.append) as executor:
        failing.set()
        errors = [
            executor.submit(f"cam{i}", image_bytes["cat.bmp"]).exception(timeout=WAIT_S)
            for i in range(4)
        ]
        failing.clear()
        result = executor.run_sync("cam", image_bytes["cat.bmp"])
        stats = executor.stats()
    assert all(isinstance(e, InferenceError) for e in errors)
    assert "failed to invoke" in str(errors[0])
    assert result.backend == "CPU"
    assert len(built) == 1  # never recreated: the CPU is not going anywhere
    assert changes == []
    assert stats.frames_failed == 4
    assert stats.backend_changes == 0


def test_compiled_model_without_twin_fails_clearly_until_the_tpu_returns(
    rig: Rig,
    tiny_tpu: Model,
    image_bytes: dict[str, bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from custom_components.coral_vision.engine.errors import EdgeTpuModelOnCpuError
    from custom_components.coral_vision.engine.inference import lifecycle as executor_module

    monkeypatch.setattr(executor_module, "REOPEN_INTERVAL_S", 0.0)
    photo = image_bytes["cat.bmp"]
    with Executor(
        tiny_tpu,
        rig.tpu,
        runtime=rig.fake.runtime(),
        list_tpus=rig.list_tpus,
        on_backend_change=rig.on_change,
    ) as executor:
        assert executor.run_sync("cam", photo).backend == "Edge TPU (USB)"
        rig.unplug()
        lost = executor.submit("cam", photo).exception(timeout=WAIT_S)
        assert isinstance(lost, DelegateError)
        # Nothing can run a compiled model without its TPU: each frame says why, none hangs.
        for _ in range(2):
            error = executor.submit("cam", photo).exception(timeout=WAIT_S)
            assert isinstance(error, EdgeTpuModelOnCpuError)
        assert executor.backend_info is None
        assert executor.stats().backend is None

        make_usb_tpu(tmp_path / "sys", "1-1")
        rig.fake.replug()
        assert executor.run_sync("cam", photo).backend == "Edge TPU (USB)"
    assert rig.changes[-1][1].kind == "edgetpu-usb"
