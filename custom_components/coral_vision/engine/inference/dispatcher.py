"""Spread sources over several executors running the same model, one per accelerator."""

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
from .preparation import make_pool
from .stats import ExecutorStats


class Dispatcher:
    """Sends each source to one executor, chosen once as the least loaded, until it closes."""

    def __init__(self, executors: Sequence[Executor], *, pool: ThreadPoolExecutor | None = None):
        """Dispatch over executors; `pool`, when given, is shut down by close() after them."""
        if not executors:
            raise ValueError("a dispatcher needs at least one executor")
        self._executors = tuple(executors)
        self._pool = pool
        self._lock = threading.Lock()
        self._assigned: dict[str, Executor] = {}

    @classmethod
    def open(
        cls,
        model: Model,
        tpus: Sequence[EdgeTpu | None],
        *,
        cpu_model: Model | None = None,
        on_backend_change: Callable[[Executor, BackendInfo], None] | None = None,
        **options: Any,
    ) -> Dispatcher:
        """Open one executor per accelerator (None: a CPU executor), sharing one prepare pool."""
        pool = make_pool()
        executors: list[Executor] = []
        try:
            for tpu in tpus:
                executors.append(
                    Executor(
                        model,
                        tpu,
                        cpu_model=cpu_model,
                        name=f"{tpu.device if tpu else 'cpu'}#{len(executors)}",
                        pool=pool,
                        on_backend_change=_bind(on_backend_change, executors, len(executors)),
                        **options,
                    )
                )
        except BaseException:
            for executor in executors:
                executor.close()
            pool.shutdown(wait=True)
            raise
        return cls(executors, pool=pool)

    @property
    def executors(self) -> tuple[Executor, ...]:
        """Every executor, open or closed, in the order given."""
        return self._executors

    def executor_for(self, source_id: str) -> Executor:
        """Return the executor a source is assigned to; ExecutorClosedError when none is open."""
        with self._lock:
            executor = self._assigned.get(source_id)
            if executor is not None and not executor.closed:
                return executor
            self._rebalance_locked()
            open_ = [e for e in self._executors if not e.closed]
            if not open_:
                raise ExecutorClosedError("every executor of the dispatcher is closed")
            load = dict.fromkeys(open_, 0)
            for assigned in self._assigned.values():
                load[assigned] += 1
            # Fewest sources first; among equals the shorter queue, then the order given.
            chosen = min(open_, key=lambda e: (load[e], e.queue_depth))
            self._assigned[source_id] = chosen
            return chosen

    def forget(self, source_id: str) -> None:
        """Stop counting a source that went away, so new sources can take its place."""
        with self._lock:
            self._assigned.pop(source_id, None)

    def submit(
        self,
        source_id: str,
        image: bytes,
        *,
        timeout: float | None = None,
        on_demand: bool = False,
    ) -> Future[FrameResult]:
        """Queue an image on the source's executor (see Executor.submit).

        An on-demand request goes to the executor with the shortest queue and is not remembered.
        """
        try:
            executor = self._least_loaded() if on_demand else self.executor_for(source_id)
        except ExecutorClosedError as err:
            future: Future[FrameResult] = Future()
            future.set_exception(err)
            return future
        return executor.submit(source_id, image, timeout=timeout, on_demand=on_demand)

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
        futures = [e.submit_swap(model, cpu_model) for e in self._executors if not e.closed]
        return tuple(f.result() for f in futures)

    async def async_swap_model(
        self, model: Model, cpu_model: Model | None = None
    ) -> tuple[BackendInfo, ...]:
        """Swap the model on every open executor and await all of them."""
        futures = [
            asyncio.wrap_future(e.submit_swap(model, cpu_model))
            for e in self._executors
            if not e.closed
        ]
        return tuple(await asyncio.gather(*futures))

    def assignments(self) -> dict[str, Executor]:
        """Return a copy of which source runs on which executor."""
        with self._lock:
            return dict(self._assigned)

    def stats(self) -> tuple[ExecutorStats, ...]:
        """Return every executor's statistics, in the order given."""
        return tuple(e.stats() for e in self._executors)

    def close(self) -> None:
        """Close every executor, then the shared pool; idempotent.

        The executors stop together, so a stuck one costs its hang limit once, not once each.
        """
        for executor in self._executors:
            executor.begin_close()
        for executor in self._executors:
            executor.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            self._assigned.clear()

    def __enter__(self) -> Dispatcher:
        """Use as a context manager that closes on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close."""
        self.close()

    def _least_loaded(self) -> Executor:
        """The open executor with the shortest queue; ExecutorClosedError when none is open."""
        open_ = [e for e in self._executors if not e.closed]
        if not open_:
            raise ExecutorClosedError("every executor of the dispatcher is closed")
        return min(open_, key=lambda e: e.queue_depth)

    def _rebalance_locked(self) -> None:
        """Forget the sources of closed executors; they are assigned afresh on their next frame."""
        for source_id, executor in list(self._assigned.items()):
            if executor.closed:
                del self._assigned[source_id]


def _bind(
    listener: Callable[[Executor, BackendInfo], None] | None,
    executors: list[Executor],
    position: int,
) -> Callable[[BackendInfo], None] | None:
    """Turn a dispatcher-wide listener into one executor's on_backend_change."""
    if listener is None:
        return None

    def changed(info: BackendInfo) -> None:
        listener(executors[position], info)

    return changed
