"""A pool of fake Edge TPUs behind one dispatcher: load, order, joining and leaving, failures."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest

from custom_components.coral_vision.engine.errors import (
    CoralVisionError,
    EdgeTpuModelOnCpuError,
    ExecutorClosedError,
    FrameSupersededError,
)
from custom_components.coral_vision.engine.inference.dispatcher import Dispatcher
from custom_components.coral_vision.engine.inference.executor import Executor
from custom_components.coral_vision.engine.inference.pool import SourceLine
from custom_components.coral_vision.engine.models.model import Model, load_model
from custom_components.coral_vision.engine.results import FrameResult

from .fakes import SleepingTpu

WAIT_S = 60.0


@pytest.fixture(scope="module")
def compiled(models_dir: Path) -> Model:
    return load_model(
        models_dir / "mobilenet_v1_0.25_128_quant_edgetpu.tflite",
        labels=models_dir / "imagenet_labels.txt",
    )


@pytest.fixture(scope="module")
def cpu_twin(models_dir: Path) -> Model:
    return load_model(
        models_dir / "mobilenet_v1_0.25_128_quant.tflite",
        labels=models_dir / "imagenet_labels.txt",
    )


@pytest.fixture
def image(image_bytes: dict[str, bytes]) -> bytes:
    return image_bytes["cat.bmp"]


def executor_on(
    fake: SleepingTpu, model: Model, cpu_model: Model | None = None, hang_limit: float = 10.0
) -> Executor:
    return Executor(
        model,
        fake.tpu,
        cpu_model=cpu_model,
        name=fake.tpu.device,
        runtime=fake.runtime(),
        list_tpus=fake.list_tpus,
        num_threads=1,
        hang_limit=hang_limit,
    )


@pytest.fixture
def no_threads_left() -> Iterator[None]:
    yield
    assert not [t for t in threading.enumerate() if t.name.startswith("coral-vision")]


def wait_all(futures: list[Future[FrameResult]]) -> list[FrameResult]:
    return [f.result(timeout=WAIT_S) for f in futures]


def test_frames_go_to_the_executor_with_fewest_in_flight(
    compiled: Model, image: bytes, no_threads_left: None
) -> None:
    fakes = [SleepingTpu(f"usb:{i}", 0.0) for i in range(2)]
    with Dispatcher([executor_on(f, compiled) for f in fakes]) as dispatcher:
        a, b = dispatcher.executors
        for fake in fakes:
            fake.hold()
        wait = [dispatcher.submit(s, image) for s in ("cam0", "cam1", "cam2")]
        spread = dispatcher.assignments()
        for fake in fakes:
            fake.release()
        wait_all(wait)
        # cam0 runs on a; cam2, idle, leaves a (one in flight) for b (none).
        fakes[0].hold()
        wait = [dispatcher.submit(s, image) for s in ("cam0", "cam2")]
        moved = dispatcher.assignments()
        # cam0 has a frame in flight on a: its next one follows it there, though b is idle.
        assert fakes[0].blocked.wait(WAIT_S)
        wait.append(dispatcher.submit("cam0", image))
        stuck = dispatcher.executor_for("cam0")
        fakes[0].release()
        wait_all(wait)
        stats = dispatcher.pool_stats()
    assert spread == {"cam0": a, "cam1": b, "cam2": a}
    assert moved == {"cam0": a, "cam1": b, "cam2": b}
    assert stuck is a
    assert dispatcher.assignments() == {}  # close forgets everything
    assert [name for name, _ in stats.executors] == ["usb:0", "usb:1"]
    assert [s.frames_done for _, s in stats.executors] == [4, 2]
    assert stats.total.frames_done == 6
    assert stats.on_tpu == 2


def test_a_source_keeps_its_order_across_the_pool(
    compiled: Model, image: bytes, no_threads_left: None
) -> None:
    fakes = [SleepingTpu(f"usb:{i}", 0.001) for i in range(3)]
    order: list[int] = []
    outcomes: list[Future[FrameResult]] = []
    with Dispatcher([executor_on(f, compiled) for f in fakes]) as dispatcher:
        for number in range(60):
            future = dispatcher.submit("cam", image)
            future.add_done_callback(lambda _, n=number: order.append(n))
            outcomes.append(future)
            if number % 3 == 2:
                outcomes[-2].exception(timeout=WAIT_S)  # keep frames overlapping
        for future in outcomes:
            future.exception(timeout=WAIT_S)
    errors = [f.exception() for f in outcomes]
    assert order == sorted(order)
    assert all(e is None or isinstance(e, FrameSupersededError) for e in errors)
    assert errors[-1] is None


def test_a_line_hands_results_back_in_order(compiled: Model) -> None:
    fake = SleepingTpu("usb:0")
    lock = threading.Lock()
    with executor_on(fake, compiled) as executor:
        line = SourceLine(executor, lock)
        with lock:
            slots = [line.reserve_locked() for _ in range(4)]
        inners: list[Future[FrameResult]] = [Future() for _ in slots]
        outers = [line.send(s, f) for s, f in zip(slots, inners, strict=True)]
        landed: list[int] = []
        for number, outer in enumerate(outers):
            outer.add_done_callback(lambda _, n=number: landed.append(n))
        # A result's callback finishing a later frame: the delivery under way hands it back.
        outers[0].add_done_callback(lambda _: inners[3].set_exception(ExecutorClosedError("x")))
        inners[2].set_exception(ExecutorClosedError("closed"))
        inners[1].cancel()
        assert landed == []
        assert line.in_flight == 4
        inners[0].set_exception(FrameSupersededError("newer"))
        with lock:
            dropped = line.reserve_locked()
        given_up = line.send(dropped, Future())
        given_up.cancel()  # the caller gives up: the frame is dropped
    assert landed == [0, 1, 2, 3]
    assert outers[1].cancelled()
    assert isinstance(outers[2].exception(), ExecutorClosedError)
    assert line.in_flight == 0


def test_tpus_join_and_leave(compiled: Model, image: bytes, no_threads_left: None) -> None:
    fake = SleepingTpu("usb:0", 0.0)
    later = SleepingTpu("usb:1", 0.0)
    with Dispatcher.open(
        compiled, [fake.tpu], runtime=fake.runtime(), list_tpus=fake.list_tpus
    ) as dispatcher:
        (first,) = dispatcher.executors
        fake.hold()
        held = dispatcher.submit("cam0", image)
        added = dispatcher.add_tpu(later.tpu)
        assert dispatcher.executor_for("cam1") is added
        fake.release()
        wait_all([held, dispatcher.submit("cam1", image)])
        with pytest.raises(ValueError, match="already has"):
            dispatcher.add(added)
        with pytest.raises(KeyError):
            dispatcher.remove("usb:9#9")
        fake.invoke_s = 0.2
        leaving = dispatcher.submit("cam2", image)
        assert dispatcher.executor_for("cam2") is first
        removed = dispatcher.remove(first.name)
        left = leaving.exception(timeout=WAIT_S)
        results = wait_all([dispatcher.submit(s, image) for s in ("cam0", "cam1", "cam2")])
        assert dispatcher.executors == (added,)
        assert set(dispatcher.assignments().values()) == {added}
        names = [name for name, _ in dispatcher.pool_stats().executors]
    assert (first.name, added.name) == ("usb:0#0", "usb:1#1")
    assert removed is first
    assert left is None or isinstance(left, ExecutorClosedError)
    assert first.closed
    assert added.closed
    assert [r.source_id for r in results] == ["cam0", "cam1", "cam2"]
    assert names == ["usb:1#1"]


def test_add_after_close_and_add_tpu_without_open(
    compiled: Model, image: bytes, no_threads_left: None
) -> None:
    fakes = [SleepingTpu(f"usb:{i}", 0.0) for i in range(2)]
    dispatcher = Dispatcher([executor_on(fakes[0], compiled)])
    with pytest.raises(TypeError, match=r"Dispatcher\.open"):
        dispatcher.add_tpu(fakes[1].tpu)
    assert [i.model_name for i in dispatcher.swap_model(compiled)] == [compiled.name]
    dispatcher.close()
    late = executor_on(fakes[1], compiled)
    with pytest.raises(ExecutorClosedError):
        dispatcher.add(late)
    assert late.closed
    error = dispatcher.submit("cam", image).exception(timeout=0)
    assert isinstance(error, ExecutorClosedError)


def test_a_failing_tpu_falls_back_while_the_other_serves(
    compiled: Model, cpu_twin: Model, image: bytes, no_threads_left: None
) -> None:
    fakes = [SleepingTpu(f"usb:{i}", 0.0) for i in range(2)]
    executors = [executor_on(f, compiled, cpu_twin) for f in fakes]
    with Dispatcher(executors) as dispatcher:
        fakes[0].unplug()
        results: list[FrameResult] = []
        errors: list[BaseException] = []
        for _ in range(10):
            for source in ("cam0", "cam1", "cam2", "cam3"):
                try:
                    results.append(dispatcher.run_sync(source, image, timeout=WAIT_S))
                except Exception as err:
                    errors.append(err)
        stats = dispatcher.pool_stats()
    kinds = {name: s.backend.kind if s.backend else None for name, s in stats.executors}
    assert len(errors) <= 1  # the frame running when the TPU went
    assert kinds == {"usb:0": "cpu", "usb:1": "edgetpu-usb"}
    assert len({r.backend for r in results}) == 2  # both served after the loss
    assert stats.on_tpu == 1
    assert fakes[1].invokes > 0
    assert len(results) == 40 - len(errors)


def test_swap_reaches_executors_added_later(
    compiled: Model, cpu_twin: Model, models_dir: Path, image: bytes, no_threads_left: None
) -> None:
    fakes = [SleepingTpu(f"usb:{i}", 0.0) for i in range(2)]
    bigger = load_model(models_dir / "mobilenet_v1_0.5_160_quant_edgetpu.tflite")
    with Dispatcher.open(
        compiled, [fakes[0].tpu], runtime=fakes[0].runtime(), list_tpus=fakes[0].list_tpus
    ) as dispatcher:
        dispatcher.swap_model(bigger)
        added = dispatcher.add_tpu(fakes[1].tpu)
        model_name = added.model.name
        dispatcher.remove(dispatcher.executors[0].name)
        result = dispatcher.run_sync("cam", image)
    assert model_name == bigger.name
    assert result.source_id == "cam"


async def test_async_swap_and_open_failure(
    compiled: Model, cpu_twin: Model, image: bytes, no_threads_left: None
) -> None:
    fake = SleepingTpu("usb:0", 0.0)
    with Dispatcher.open(
        compiled, [fake.tpu, fake.tpu], runtime=fake.runtime(), list_tpus=fake.list_tpus
    ) as dispatcher:
        infos = await dispatcher.async_swap_model(compiled, cpu_twin)
        result = await dispatcher.run("cam", image)
    assert [i.model_name for i in infos] == [compiled.name] * 2
    assert result.source_id == "cam"
    before = set(threading.enumerate())
    with pytest.raises(EdgeTpuModelOnCpuError):
        Dispatcher.open(compiled, [fake.tpu, None], runtime=fake.runtime())
    assert set(threading.enumerate()) == before


def test_frames_of_a_removed_tpu_come_back_before_later_ones(compiled: Model, image: bytes) -> None:
    fake, other = SleepingTpu("usb:0", 0.0), SleepingTpu("usb:1", 0.0)
    landed: list[str] = []
    with Dispatcher([executor_on(fake, compiled, hang_limit=0.5)]) as dispatcher:
        (first,) = dispatcher.executors
        fake.hold()
        stuck = dispatcher.submit("cam", image)
        stuck.add_done_callback(lambda _: landed.append("stuck"))
        assert fake.blocked.wait(WAIT_S)
        dispatcher.add(executor_on(other, compiled))
        removing = threading.Thread(target=dispatcher.remove, args=(first.name,))
        removing.start()
        while first in dispatcher.executors:
            removing.join(0.01)
        later = dispatcher.submit("cam", image)
        later.add_done_callback(lambda _: landed.append("later"))
        result = later.result(timeout=WAIT_S)
        removing.join(WAIT_S)
        fake.release()
    deadline = time.monotonic() + WAIT_S  # the abandoned invoke ends once released
    while time.monotonic() < deadline and any(
        t.name.startswith("coral-vision") for t in threading.enumerate()
    ):
        time.sleep(0.01)
    assert landed == ["stuck", "later"]
    assert isinstance(stuck.exception(), CoralVisionError)
    assert result.source_id == "cam"
