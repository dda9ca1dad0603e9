"""What a dispatcher keeps per source and per pool: frames in order, and statistics in total."""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass

from ..results import FrameResult
from .executor import Executor
from .stats import ExecutorStats, total_stats


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolStats:
    """Every executor's statistics by name, their total, and how many run on an Edge TPU now."""

    executors: tuple[tuple[str, ExecutorStats], ...]
    total: ExecutorStats
    on_tpu: int


def pool_stats(named: Sequence[tuple[str, ExecutorStats]]) -> PoolStats:
    """Add up executors' statistics (at least one)."""
    stats = [s for _, s in named]
    return PoolStats(
        executors=tuple(named),
        total=total_stats(stats),
        on_tpu=sum(1 for s in stats if s.backend is not None and s.backend.kind != "cpu"),
    )


class _Slot:
    """A frame's place in its source's line: the caller's future and, once sent, the executor's."""

    __slots__ = ("inner", "outer")

    def __init__(self) -> None:
        self.outer: Future[FrameResult] = Future()
        self.inner: Future[FrameResult] | None = None

    def done(self) -> bool:
        return self.inner is not None and self.inner.done()


class SourceLine:
    """One source's frames in flight, on one executor, handed back in the order submitted."""

    def __init__(self, executor: Executor, lock: threading.Lock) -> None:
        """Track frames sent to `executor`; `lock` is the dispatcher's."""
        self.executor = executor
        self._lock = lock
        self._pending: deque[_Slot] = deque()
        self._delivering = False

    @property
    def in_flight(self) -> int:
        """Frames submitted and not yet handed back (read under the dispatcher's lock)."""
        return len(self._pending)

    def reserve_locked(self) -> _Slot:
        """Take the next place in line; send() fills it outside the lock."""
        slot = _Slot()
        self._pending.append(slot)
        return slot

    def send(self, slot: _Slot, inner: Future[FrameResult]) -> Future[FrameResult]:
        """Tie the executor's future to its place; return the future the caller gets."""
        with self._lock:
            slot.inner = inner
        outer = slot.outer
        outer.add_done_callback(lambda _: inner.cancel() if outer.cancelled() else None)
        inner.add_done_callback(self.deliver)
        return outer

    def deliver(self, _: object = None) -> None:
        """Hand back every finished frame at the head of the line, oldest first."""
        with self._lock:
            if self._delivering:
                return  # the thread delivering now picks these up too
            self._delivering = True
        while True:
            with self._lock:
                ready = []
                while self._pending and self._pending[0].done():
                    ready.append(self._pending.popleft())
                if not ready:
                    self._delivering = False
                    return
            # Outside the lock: a result's callbacks may submit the source's next frame.
            for slot in ready:
                assert slot.inner is not None
                _transfer(slot.inner, slot.outer)


def _transfer(inner: Future[FrameResult], outer: Future[FrameResult]) -> None:
    """Copy a finished future's outcome onto the one the caller holds (unless it cancelled)."""
    if inner.cancelled():
        outer.cancel()
        return
    error = inner.exception()
    # The caller may have cancelled its future meanwhile.
    with contextlib.suppress(InvalidStateError):
        if error is not None:
            outer.set_exception(error)
        else:
            outer.set_result(inner.result())
