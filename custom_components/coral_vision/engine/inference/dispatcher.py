"""A pool of executors running the same model, one per accelerator, spread by load.

A source (a camera) sticks to one executor while it has frames in flight, so its frames run one
after another on one worker and come back in the order submitted (a SourceLine hands results
back oldest first even if decoding finishes out of order). Once its frames are back, its next
frame goes to the executor with the fewest frames in flight. On-demand requests (actions) go to
the executor with the fewest in flight and are not remembered.

Each executor falls back to the CPU and recovers its Edge TPU on its own. add() and add_tpu()
let a TPU plugged in later join; remove() closes a TPU gone for good, and its sources move on
their next frame (frames it still had fail with ExecutorClosedError, still in order).
stats() gives each executor's statistics, pool_stats() those by name and their total.

Blocking: open(), add_tpu(), remove(), close(), run_sync() and swap_model() (run them in an
executor job); submit(), add(), executor_for(), stats() and pool_stats() never block.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..errors import ExecutorClosedError
from ..models.model import Model
from ..results import FrameResult
from .delegate import BackendInfo
from .devices import EdgeTpu
from .executor import Executor
from .pool import PoolStats, SourceLine, pool_stats
from .preparation import make_pool
from .stats import ExecutorStats

BackendListener = Callable[[Executor, BackendInfo], None]


class Dispatcher:
    """Sends each source's frames to one executor at a time, the least loaded when it is idle."""

    def __init__(self, executors: Sequence[Executor], *, pool: ThreadPoolExecutor | None = None):
        """Dispatch over executors; `pool`, when given, is shut down by close() after them."""
        if not executors:
            raise ValueError("a dispatcher needs at least one executor")
        self._executors = list(executors)
        self._pool = pool
        self._lock = threading.Lock()
        self._lines: dict[str, SourceLine] = {}
        self._in_flight: dict[Executor, int] = dict.fromkeys(self._executors, 0)
        self._closed = False
        self._opener: _Opener | None = None

    @classmethod
    def open(
        cls,
        model: Model,
        tpus: Sequence[EdgeTpu | None],
        *,
        cpu_model: Model | None = None,
        on_backend_change: BackendListener | None = None,
        **options: Any,
    ) -> Dispatcher:
        """Open one executor per accelerator (None: a CPU executor), sharing one prepare pool."""
        pool = make_pool()
        opener = _Opener(model, cpu_model, pool, on_backend_change, options)
        executors: list[Executor] = []
        try:
            for tpu in tpus:
                executors.append(opener(tpu))
        except BaseException:
            for executor in executors:
                executor.close()
            pool.shutdown(wait=True)
            raise
        dispatcher = cls(executors, pool=pool)
        dispatcher._opener = opener
        return dispatcher

    @property
    def executors(self) -> tuple[Executor, ...]:
        """Every executor in the pool (open or closed, removed ones left out), oldest first."""
        with self._lock:
            return tuple(self._executors)

    def add(self, executor: Executor) -> None:
        """Let a new executor take frames; ValueError when its name is taken."""
        with self._lock:
            closed = self._closed
            if not closed:
                if any(e.name == executor.name for e in self._executors):
                    raise ValueError(f"the pool already has an executor named {executor.name}")
                self._executors.append(executor)
                self._in_flight.setdefault(executor, 0)
        if closed:
            executor.close()
            raise ExecutorClosedError("the dispatcher is closed")

    def add_tpu(self, tpu: EdgeTpu | None) -> Executor:
        """Open an executor for a newly found accelerator, as open() did, and add it."""
        if self._opener is None:
            raise TypeError("only a dispatcher made by Dispatcher.open() can open executors")
        executor = self._opener(tpu)
        self.add(executor)
        return executor

    def remove(self, name: str) -> Executor:
        """Close the executor named `name` and take it out; its sources move on their next frame."""
        with self._lock:
            executor = next((e for e in self._executors if e.name == name), None)
            if executor is None:
                raise KeyError(name)
            self._executors.remove(executor)
            self._in_flight.pop(executor, None)
        executor.close()
        return executor

    def executor_for(self, source_id: str) -> Executor:
        """Return the executor a source's next frame goes to; ExecutorClosedError when none is."""
        with self._lock:
            return self._line_locked(source_id).executor

    def forget(self, source_id: str) -> None:
        """Stop counting a source that went away, so new sources can take its place."""
        with self._lock:
            self._lines.pop(source_id, None)

    def submit(
        self,
        source_id: str,
        image: bytes,
        *,
        timeout: float | None = None,
        on_demand: bool = False,
    ) -> Future[FrameResult]:
        """Queue an image on the source's executor (see Executor.submit).

        An on-demand request goes to the executor with the fewest frames in flight and is not
        remembered; a source's frames come back in the order submitted.
        """
        line: SourceLine | None = None
        try:
            with self._lock:
                if on_demand:
                    executor = self._least_loaded_locked()
                else:
                    line = self._line_locked(source_id)
                    executor = line.executor
                    slot = line.reserve_locked()
                self._in_flight[executor] = self._in_flight.get(executor, 0) + 1
        except ExecutorClosedError as err:
            future: Future[FrameResult] = Future()
            future.set_exception(err)
            return future
        # Outside the lock: a superseded frame's callbacks run inside submit().
        inner = executor.submit(source_id, image, timeout=timeout, on_demand=on_demand)
        inner.add_done_callback(lambda _: self._landed(executor))
        return inner if line is None else line.send(slot, inner)

    async def run(
        self,
        source_id: str,
        image: bytes,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - also bounds the queue
        on_demand: bool = False,
    ) -> FrameResult:
        """Run an image on the source's executor and await its result."""
        return await asyncio.wrap_future(
            self.submit(source_id, image, timeout=timeout, on_demand=on_demand)
        )

    def run_sync(
        self,
        source_id: str,
        image: bytes,
        *,
        timeout: float | None = None,
        on_demand: bool = False,
    ) -> FrameResult:
        """Run an image, blocking this (non-event-loop) thread until its result."""
        return self.submit(source_id, image, timeout=timeout, on_demand=on_demand).result()

    def swap_model(self, model: Model, cpu_model: Model | None = None) -> tuple[BackendInfo, ...]:
        """Swap the model on every open executor at once; wait for all of them."""
        futures = self._submit_swaps(model, cpu_model)
        return tuple(f.result() for f in futures)

    async def async_swap_model(
        self, model: Model, cpu_model: Model | None = None
    ) -> tuple[BackendInfo, ...]:
        """Swap the model on every open executor and await all of them."""
        futures = [asyncio.wrap_future(f) for f in self._submit_swaps(model, cpu_model)]
        return tuple(await asyncio.gather(*futures))

    def assignments(self) -> dict[str, Executor]:
        """Return a copy of which executor each source last ran on."""
        with self._lock:
            return {source: line.executor for source, line in self._lines.items()}

    def stats(self) -> tuple[ExecutorStats, ...]:
        """Return every executor's statistics, in the order of `executors`."""
        return tuple(e.stats() for e in self.executors)

    def pool_stats(self) -> PoolStats:
        """Return every executor's statistics by name, and their total."""
        return pool_stats([(e.name, e.stats()) for e in self.executors])

    def close(self) -> None:
        """Close every executor, then the shared pool; idempotent.

        The executors stop together, so a stuck one costs its hang limit once, not once each.
        """
        with self._lock:
            self._closed = True
            executors = list(self._executors)
        for executor in executors:
            executor.begin_close()
        for executor in executors:
            executor.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            self._lines.clear()

    def __enter__(self) -> Dispatcher:
        """Use as a context manager that closes on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close."""
        self.close()

    def _submit_swaps(self, model: Model, cpu_model: Model | None) -> list[Future[BackendInfo]]:
        """Ask every open executor to swap; executors added later open the new model."""
        if self._opener is not None:
            self._opener.model, self._opener.cpu_model = model, cpu_model
        return [e.submit_swap(model, cpu_model) for e in self.executors if not e.closed]

    def _landed(self, executor: Executor) -> None:
        """A frame left `executor`: count it out of its load."""
        with self._lock:
            if executor in self._in_flight:  # else removed from the pool meanwhile
                self._in_flight[executor] -= 1

    def _open_locked(self) -> list[Executor]:
        """The open executors; ExecutorClosedError when there is none."""
        open_ = [e for e in self._executors if not e.closed]
        if self._closed or not open_:
            raise ExecutorClosedError("every executor of the dispatcher is closed")
        return open_

    def _least_loaded_locked(self) -> Executor:
        """The open executor with the fewest frames in flight, then the shortest queue."""
        return min(self._open_locked(), key=lambda e: (self._in_flight.get(e, 0), e.queue_depth))

    def _serving_locked(self, executor: Executor) -> bool:
        """Whether `executor` is still in the pool and open."""
        return executor in self._executors and not executor.closed

    def _line_locked(self, source_id: str) -> SourceLine:
        """The source's line, moved to the least loaded executor when it has nothing in flight."""
        line = self._lines.get(source_id)
        current = line.executor if line is not None else None
        if line is not None and line.in_flight and self._serving_locked(line.executor):
            return line
        open_ = self._open_locked()
        sources = dict.fromkeys(open_, 0)
        for other, other_line in self._lines.items():
            if other != source_id and other_line.executor in sources:
                sources[other_line.executor] += 1
        # Fewest frames in flight, then fewest sources; among equals stay, then the order given.
        chosen = min(open_, key=lambda e: (self._in_flight.get(e, 0), sources[e], e is not current))
        if line is None:
            line = self._lines[source_id] = SourceLine(chosen, self._lock)
        # Frames still on a closed executor stay in line: the new ones come back after them.
        line.executor = chosen
        return line


class _Opener:
    """Opens executors the way Dispatcher.open() did, for the model running now."""

    def __init__(
        self,
        model: Model,
        cpu_model: Model | None,
        pool: ThreadPoolExecutor,
        listener: BackendListener | None,
        options: dict[str, Any],
    ) -> None:
        self.model, self.cpu_model = model, cpu_model
        self._pool = pool
        self._listener = listener
        self._options = options
        self._opened = 0

    def __call__(self, tpu: EdgeTpu | None) -> Executor:
        """Open an executor on `tpu` (None: the CPU), named after it and its rank."""
        holder: list[Executor] = []
        executor = Executor(
            self.model,
            tpu,
            cpu_model=self.cpu_model,
            name=f"{tpu.device if tpu else 'cpu'}#{self._opened}",
            pool=self._pool,
            on_backend_change=_bind(self._listener, holder),
            **self._options,
        )
        self._opened += 1
        holder.append(executor)
        return executor


def _bind(
    listener: BackendListener | None, holder: list[Executor]
) -> Callable[[BackendInfo], None] | None:
    """Turn a pool-wide listener into one executor's on_backend_change."""
    if listener is None:
        return None

    def changed(info: BackendInfo) -> None:
        listener(holder[0], info)

    return changed
