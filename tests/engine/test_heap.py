"""Handing freed native memory back: now and then, on the preparation pool, glibc or nothing."""

from __future__ import annotations

import ctypes
import threading
from typing import Any

import pytest

from custom_components.coral_vision.engine.inference import heap, preparation
from custom_components.coral_vision.engine.inference.executor import Executor
from custom_components.coral_vision.engine.inference.heap import (
    HeapTrimmer,
    load_malloc_trim,
    trimmer,
)
from custom_components.coral_vision.engine.models.model import Model


class Trims:
    """A malloc_trim that records the argument and the thread of each call."""

    def __init__(self) -> None:
        """No calls yet."""
        self.calls: list[tuple[int, str]] = []

    def __call__(self, pad: int) -> int:
        """Record the call; 1: memory was released."""
        self.calls.append((pad, threading.current_thread().name))
        return 1


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        """Start at zero."""
        self.now = 0.0

    def __call__(self) -> float:
        """The time now."""
        return self.now


def test_trims_at_most_once_per_interval() -> None:
    trims, clock = Trims(), Clock()
    trimmer_ = HeapTrimmer(trims, interval=30, clock=clock)
    trimmer_.maybe_trim()
    clock.now = 29.9
    trimmer_.maybe_trim()
    assert trims.calls == []
    clock.now = 30
    trimmer_.maybe_trim()
    trimmer_.maybe_trim()
    assert [pad for pad, _ in trims.calls] == [0]
    clock.now = 60
    trimmer_.maybe_trim()
    assert len(trims.calls) == 2


def test_nobody_waits_for_a_trim_under_way() -> None:
    trims = Trims()
    trimmer_ = HeapTrimmer(lambda pad: trims(pad) + nested(), interval=0)

    def nested() -> int:
        other = threading.Thread(target=trimmer_.maybe_trim)  # another pool thread, meanwhile
        other.start()
        other.join(10)
        return 0

    trimmer_.maybe_trim()
    assert len(trims.calls) == 1


def test_a_failing_trim_is_given_up_quietly() -> None:
    clock, calls = Clock(), list[int]()

    def broken(pad: int) -> int:
        calls.append(pad)
        raise OSError("no")

    trimmer_ = HeapTrimmer(broken, interval=1, clock=clock)
    clock.now = 1
    trimmer_.maybe_trim()  # no exception: a frame never fails for a trim
    clock.now = 2
    trimmer_.maybe_trim()
    assert calls == [0]


def test_without_glibc_there_is_nothing_to_call(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(_name: str) -> Any:
        raise OSError("libc.so.6: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", missing)
    assert load_malloc_trim() is None
    HeapTrimmer(None, interval=0).maybe_trim()


def test_a_c_library_without_malloc_trim_is_no_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ctypes, "CDLL", lambda _name: object())
    assert load_malloc_trim() is None


def test_the_real_trim_is_harmless() -> None:
    trim = load_malloc_trim()
    if trim is None:
        pytest.skip("not glibc")
    HeapTrimmer(trim, interval=0).maybe_trim()


def test_one_trimmer_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_TRIMMER", None)
    assert trimmer() is trimmer()


def test_frames_trim_the_heap_on_the_preparation_pool(
    monkeypatch: pytest.MonkeyPatch, tiny: Model, image_bytes: dict[str, bytes]
) -> None:
    trims = Trims()
    monkeypatch.setattr(preparation, "trimmer", lambda: HeapTrimmer(trims, interval=0))
    with Executor(tiny) as executor:
        for index in range(6):
            executor.run_sync(f"camera {index % 2}", image_bytes["cat_1080p.jpg"])
    assert len(trims.calls) >= 6  # once a frame here (interval 0); twice a minute in use
    assert {pad for pad, _ in trims.calls} == {0}
    # Never on the caller's thread (in Home Assistant: the event loop) nor the interpreter's.
    assert all(name.startswith("coral-vision-prepare") for _, name in trims.calls)
