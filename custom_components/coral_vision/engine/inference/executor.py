"""Run frames on one accelerator: a thread owns the interpreter, a shared pool does the rest.

Threads of one executor:
- the worker opens the Backend, then only sets the input, invokes and copies the outputs;
- the watchdog expires requests at their deadline and replaces a worker stuck past the hang
  limit in an invoke or in opening an Edge TPU;
- a small thread pool (shared between executors when given) decodes and resizes images before
  the worker sees them and turns raw outputs into results after it.

The executor composes its parts, each in its own module: the request table and its two lanes
(requests.py), preparing frames in the pool (preparation.py), the backend's lifecycle: open,
fall back, reopen, and stuck workers (lifecycle.py), and the watchdog thread (watchdog.py). They
share one lock and the state it guards (shared.py).

Two lanes share the worker. Continuous sources (cameras) hold up to `queue_size` waiting frames,
the newest per source. On-demand requests (`submit(..., on_demand=True)`, e.g. actions) have
`on_demand_limit` places of their own, counted until they resolve; beyond that they fail at once
with QueueFullError. The lanes take turns, so neither delays the other by more than a frame.

Calling from Home Assistant: the constructor, close(), run_sync() and swap_model() block (run
them in an executor job); submit(), begin_close() and stats() never block and are safe on the
event loop; run() and async_swap_model() are the awaitable forms. Every future resolves: with a
result, or with a CoralVisionError (superseded, queue full, timeout, bad image, inference, closed).

`on_backend_change` is called on the worker thread (never the event loop) each time the executor
opens a new backend after the first one: after recovering from a lost or hung Edge TPU and after
a model swap. It must return quickly (use loop.call_soon_threadsafe to reach the event loop) and
must not call this executor's blocking methods. It is not called once close() has begun.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..errors import (
    CoralVisionError,
    DelegateError,
    ExecutorClosedError,
    FrameSupersededError,
    InferenceError,
    QueueFullError,
)
from ..results import FrameResult
from ..runtime import Runtime
from ..vision.detect import decode_outputs
from ..vision.preprocess import PreparedFrame
from .delegate import Backend, BackendInfo
from .devices import EdgeTpu, list_edge_tpus
from .lifecycle import BackendOptions, Lifecycle, Worker
from .preparation import Preparation, make_pool
from .requests import Request, RequestTable, Swap, resolve
from .shared import Shared
from .stats import ExecutorStats, StatsRecorder
from .watchdog import Watchdog

if TYPE_CHECKING:
    import numpy.typing as npt

    from ..models.model import Model, ResizeMode

_LOGGER = logging.getLogger(__name__)

# Consecutive InferenceErrors after which an Edge TPU is taken to be gone (one may be a bad frame).
TPU_ERROR_LIMIT = 3
# How long close() waits for a worker abandoned earlier (it already ran over the hang limit).
ABANDONED_JOIN_S = 1.0
# How long close() waits for results still being decoded in the pool.
POSTPROCESS_JOIN_S = 5.0
# On-demand frames (actions) in flight at once: enough for a burst, never a camera's place.
ON_DEMAND_LIMIT = 4


def default_num_threads() -> int:
    """Return the CPU interpreter's threads: half the cores, leaving the rest to decoding."""
    # Decoding a 1080p JPEG costs about half an invoke of CPU, so on 2 cores a 2-thread
    # interpreter's ceiling (~100 frames/s) is out of reach (~0.56 of it, ~60 frames/s), while
    # 1 thread runs at ~0.97 of its own (~57 frames/s) (benchmarks/engine_throughput.py).
    return max(1, (os.cpu_count() or 1) // 2)


class _Retry:
    """Ask the worker to try its Edge TPU again (a hung call returned, or time to look)."""


_RETRY = _Retry()


class Executor:
    """Runs frames from many sources on one accelerator, newest frame per source first."""

    def __init__(
        self,
        model: Model,
        tpu: EdgeTpu | None = None,
        *,
        cpu_model: Model | None = None,
        name: str | None = None,
        num_threads: int | None = None,
        runtime: Runtime | None = None,
        queue_size: int = 16,
        on_demand_limit: int = ON_DEMAND_LIMIT,
        timeout: float | None = 30.0,
        hang_limit: float = 10.0,
        threshold: float = 0.25,
        top_k: int = 10,
        resize: ResizeMode | None = None,
        pool: ThreadPoolExecutor | None = None,
        on_backend_change: Callable[[BackendInfo], None] | None = None,
        list_tpus: Callable[[], Sequence[EdgeTpu]] = list_edge_tpus,
    ) -> None:
        """Open the backend on a new worker thread; raise what opening it raised."""
        self.name = name or (tpu.device if tpu else "cpu")
        table = RequestTable(self.name, queue_size, on_demand_limit)
        self._shared = shared = Shared(
            self.name, model, cpu_model, table, StatsRecorder(queue_size), hang_limit
        )
        self._table = table
        self._tpu = tpu
        self._timeout = timeout
        self._threshold = threshold
        self._top_k = top_k
        self._own_pool = pool is None
        self._pool = pool or make_pool()
        self._preparation = Preparation(shared, self._pool, resize)
        self._lifecycle = Lifecycle(
            shared,
            self._preparation,
            BackendOptions(
                tpu=tpu,
                num_threads=num_threads or default_num_threads(),
                runtime=runtime,
                list_tpus=list_tpus,
                on_backend_change=on_backend_change,
            ),
        )
        self._swaps: deque[Swap] = deque()
        self._post_jobs: set[Future[None]] = set()

        ready: Future[BackendInfo] = Future()
        worker = self._lifecycle.worker = self._spawn(ready)
        try:
            shared.backend_info = ready.result()
        except BaseException:
            self._join_worker(worker, time.monotonic() + hang_limit)
            if self._own_pool:
                self._pool.shutdown(wait=True)
            raise
        self._watchdog = Watchdog(shared, self._lifecycle, lambda: self._spawn(None))
        self._watchdog.start()

    # -- public API --------------------------------------------------------------------------

    @property
    def backend_info(self) -> BackendInfo | None:
        """The backend frames run on now (None while none could be opened)."""
        with self._shared.lock:
            return self._shared.backend_info

    @property
    def model(self) -> Model:
        """The model new frames run on."""
        with self._shared.lock:
            return self._shared.model

    @property
    def closed(self) -> bool:
        """Whether close() was called."""
        with self._shared.lock:
            return self._shared.closed

    @property
    def queue_depth(self) -> int:
        """Frames accepted and not yet invoking."""
        with self._shared.lock:
            return len(self._table.waiting)

    def submit(
        self,
        source_id: str,
        image: bytes,
        *,
        timeout: float | None = None,
        on_demand: bool = False,
    ) -> Future[FrameResult]:
        """Queue an encoded image from any thread; the future fails with a CoralVisionError.

        `on_demand` marks a one-off request (an action) rather than a source's stream: it takes
        a place in the on-demand lane, never one kept for continuous sources.
        """
        shared, table = self._shared, self._table
        future: Future[FrameResult] = Future()
        limit = self._timeout if timeout is None else timeout
        now = time.monotonic()
        request = Request(
            source_id=source_id,
            data=image,
            future=future,
            timeout=limit,
            deadline=None if limit is None else now + limit,
            on_demand=on_demand,
        )
        superseded: Request | None = None
        refused: CoralVisionError | None = None
        with shared.lock:
            if shared.closed:
                refused = ExecutorClosedError(f"executor {self.name} is closed")
            elif source_id not in table.waiting:
                refused = table.refusal(on_demand)
            if refused is None:
                superseded = table.add(request)
                shared.stats.queue_depth(len(table.waiting))
                self._preparation.schedule_locked()
                if request.deadline is not None and (
                    shared.watch_due is None or request.deadline < shared.watch_due
                ):
                    shared.watch.notify()
        if refused is not None:
            if isinstance(refused, QueueFullError):
                shared.stats.rejected()
            future.set_exception(refused)
            return future
        future.add_done_callback(lambda _: self._forget_cancelled(request))
        if superseded is not None:
            shared.stats.dropped()
            resolve(
                superseded.future,
                error=FrameSupersededError(
                    f"a newer frame from {source_id} replaced this one before it ran"
                ),
            )
        return future

    async def run(
        self,
        source_id: str,
        image: bytes,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - also bounds the queue
        on_demand: bool = False,
    ) -> FrameResult:
        """Run an encoded image and await its result; cancelling drops a frame not yet running."""
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
        """Run an encoded image, blocking this (non-event-loop) thread until its result."""
        return self.submit(source_id, image, timeout=timeout, on_demand=on_demand).result()

    def submit_swap(self, model: Model, cpu_model: Model | None = None) -> Future[BackendInfo]:
        """Ask the worker to run `model` from its next frame on; queued frames are kept."""
        future: Future[BackendInfo] = Future()
        with self._shared.lock:
            if self._shared.closed:
                future.set_exception(ExecutorClosedError(f"executor {self.name} is closed"))
                return future
            self._swaps.append(Swap(model, cpu_model, future))
            self._shared.work.notify_all()
        return future

    def swap_model(self, model: Model, cpu_model: Model | None = None) -> BackendInfo:
        """Swap the model, blocking until the new backend runs (or raising why it can't)."""
        return self.submit_swap(model, cpu_model).result()

    async def async_swap_model(self, model: Model, cpu_model: Model | None = None) -> BackendInfo:
        """Swap the model and wait for the new backend."""
        return await asyncio.wrap_future(self.submit_swap(model, cpu_model))

    def stats(self) -> ExecutorStats:
        """Return an immutable snapshot of the counters, queue and backend."""
        shared = self._shared
        with shared.lock:
            depth, backend = len(self._table.waiting), shared.backend_info
        return shared.stats.snapshot(queue_depth=depth, backend=backend)

    def begin_close(self) -> None:
        """Refuse new work, fail what waits and tell the threads to end, without waiting."""
        shared = self._shared
        with shared.lock:
            if shared.closed:
                return
            shared.closed = True
            shared.close_deadline = time.monotonic() + shared.hang_limit
            waiting = self._table.drain()
            swaps = list(self._swaps)
            self._swaps.clear()
            shared.work.notify_all()
            shared.watch.notify_all()
        for request in waiting:
            shared.fail(request, shared.closed_error())
        for swap in swaps:
            resolve(swap.future, error=shared.closed_error())

    def close(self) -> None:
        """Stop: fail what is queued, finish or fail what runs, join every thread; idempotent.

        Returns within the hang limit of begin_close() (plus decoding what already ran): a
        worker still in a native call by then is left behind and ends when that call returns.
        """
        shared = self._shared
        self.begin_close()
        with shared.lock:
            worker, deadline = self._lifecycle.worker, shared.close_deadline
        self._join_worker(worker, deadline)
        self._watchdog.join()
        with shared.lock:
            abandoned = list(self._lifecycle.abandoned)
            jobs = list(self._post_jobs)
        give_up = min(deadline, time.monotonic() + ABANDONED_JOIN_S)
        for stuck in abandoned:
            if stuck.thread is not None:
                stuck.thread.join(max(0.0, give_up - time.monotonic()))
                if stuck.thread.is_alive():
                    _LOGGER.warning("%s: leaving a hung inference thread behind", self.name)
        _wait_all(jobs, POSTPROCESS_JOIN_S)
        with shared.lock:
            leftovers = list(self._table.live)
        for request in leftovers:
            shared.fail(request, shared.closed_error())
        if self._own_pool:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Executor:
        """Use as a context manager that closes on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close."""
        self.close()

    def _forget_cancelled(self, request: Request) -> None:
        """Free a cancelled frame's place in line now, not when the worker meets it."""
        if not request.future.cancelled():
            return
        with self._shared.lock:
            self._table.forget(request)

    # -- the worker thread -------------------------------------------------------------------

    def _spawn(self, ready: Future[BackendInfo] | None) -> Worker:
        """Start a worker thread; `ready` gets the first backend's info, else it recovers."""
        worker = Worker()
        worker.thread = threading.Thread(
            target=self._work_loop,
            args=(worker, ready),
            name=f"coral-vision-infer-{self.name}",
            # Daemon because a hung native call can't be interrupted; close() joins the rest.
            daemon=True,
        )
        worker.thread.start()
        return worker

    def _join_worker(self, worker: Worker, deadline: float) -> None:
        """Join a worker until `deadline`, then abandon it where it is stuck."""
        assert worker.thread is not None
        if worker.thread is threading.current_thread():
            return  # close() called from on_backend_change: the loop ends on its own
        worker.thread.join(max(0.0, deadline - time.monotonic()))
        if not worker.thread.is_alive():
            return
        with self._shared.lock:
            if worker.abandoned:
                return
            request, swap = self._lifecycle.abandon_locked(worker)
        closed = self._shared.closed_error()
        if request is not None:
            self._shared.fail(request, closed)
        if swap is not None:
            resolve(swap.future, error=closed)

    def _work_loop(self, worker: Worker, ready: Future[BackendInfo] | None) -> None:
        lifecycle = self._lifecycle
        backend: Backend | None = None
        try:
            if ready is not None:
                try:
                    backend = lifecycle.open(self._shared.model, self._tpu, self._shared.cpu_model)
                except BaseException as err:
                    ready.set_exception(err)
                    return
                worker.info = backend.info
                ready.set_result(backend.info)
            else:
                backend = lifecycle.reopen(worker)
            while (job := self._next_job(worker)) is not None:
                if isinstance(job, Swap):
                    backend = lifecycle.apply_swap(worker, backend, job)
                elif isinstance(job, _Retry):
                    backend = lifecycle.retry_tpu(worker, backend)
                else:
                    backend = self._run(worker, backend, job)
        finally:
            if backend is not None:
                backend.close()

    def _next_job(self, worker: Worker) -> Swap | _Retry | Request | None:
        """Block until there is something to do; None when the worker should end."""
        shared = self._shared
        with shared.lock:
            while True:
                if worker.abandoned or shared.closed:
                    return None
                if self._swaps:
                    worker.swap = self._swaps.popleft()
                    return worker.swap
                if shared.tpu_returned or self._lifecycle.recheck_wait_locked(worker) == 0.0:
                    shared.tpu_returned = False
                    return _RETRY
                request = self._table.take_ready()
                if request is not None:
                    worker.request = request
                    return request
                shared.work.wait(self._lifecycle.recheck_wait_locked(worker))

    def _finish_invoke(self, worker: Worker, request: Request) -> bool:
        """Leave the invoke; False when the watchdog gave up on it meanwhile."""
        with self._shared.lock:
            current = worker.request is request
            worker.request = None
        return self._lifecycle.leave_call(worker) and current

    def _run(self, worker: Worker, backend: Backend | None, request: Request) -> Backend | None:
        """Invoke one frame; recover the backend when an Edge TPU stops working."""
        shared, lifecycle = self._shared, self._lifecycle
        if backend is None:
            backend = lifecycle.reopen(worker, throttled=True)
        if backend is None:
            with shared.lock:
                worker.request = None
            error = worker.open_error or DelegateError(f"{self.name}: no backend could be opened")
            shared.fail(request, error)
            return None
        frame = request.frame
        assert frame is not None
        with shared.lock:
            if worker.abandoned:
                return backend
            lifecycle.enter_call_locked(worker, "invoke", backend.info.device)
        started = time.perf_counter()
        try:
            outputs = backend.invoke(frame)
        except (DelegateError, InferenceError) as err:
            if not self._finish_invoke(worker, request):
                return backend
            shared.fail(request, err)
            if backend.info.kind == "cpu":
                return backend
            worker.tpu_errors += 1
            if isinstance(err, DelegateError) or worker.tpu_errors >= TPU_ERROR_LIMIT:
                _LOGGER.warning(
                    "%s: %s stopped working (%s); reopening", self.name, backend.info.label, err
                )
                backend.close()
                return lifecycle.reopen(worker)
            return backend
        except Exception as err:  # one frame's failure must not end the worker
            _LOGGER.exception("%s: unexpected error while invoking", self.name)
            if self._finish_invoke(worker, request):
                shared.fail(request, InferenceError(f"inference failed: {err}"))
            return backend
        inference_ms = (time.perf_counter() - started) * 1000
        worker.tpu_errors = 0
        if self._finish_invoke(worker, request):
            self._post(request, backend.model, backend.info, outputs, frame, inference_ms)
        return backend

    # -- decoding outputs (pool threads) -----------------------------------------------------

    def _post(
        self,
        request: Request,
        model: Model,
        info: BackendInfo,
        outputs: tuple[npt.NDArray[Any], ...],
        frame: PreparedFrame,
        inference_ms: float,
    ) -> None:
        """Decode the outputs in the pool so the worker can start the next frame."""
        try:
            job = self._pool.submit(
                self._decode, request, model, info, outputs, frame, inference_ms
            )
        except RuntimeError:
            self._shared.fail(request, self._shared.closed_error())
            return
        with self._shared.lock:
            self._post_jobs.add(job)
        job.add_done_callback(self._post_done)

    def _post_done(self, job: Future[None]) -> None:
        with self._shared.lock:
            self._post_jobs.discard(job)

    def _decode(
        self,
        request: Request,
        model: Model,
        info: BackendInfo,
        outputs: tuple[npt.NDArray[Any], ...],
        frame: PreparedFrame,
        inference_ms: float,
    ) -> None:
        try:
            detections, classes = decode_outputs(
                model, outputs, frame, threshold=self._threshold, top_k=self._top_k
            )
        except CoralVisionError as err:
            self._shared.fail(request, err)
            return
        except Exception as err:  # reported on the request, not lost in the pool
            _LOGGER.exception("%s: decoding outputs failed", self.name)
            self._shared.fail(request, InferenceError(f"cannot decode the model's outputs: {err}"))
            return
        result = FrameResult(
            source_id=request.source_id,
            task=model.task,
            image_size=frame.image_size,
            backend=info.label,
            inference_ms=inference_ms,
            preprocess_ms=request.preprocess_ms,
            detections=tuple(detections),
            classes=tuple(classes),
        )
        self._shared.settle(request, result=result)


def _wait_all(jobs: list[Future[None]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for job in jobs:
        # Cancelled or slow jobs are fine: close() fails whatever is left.
        with contextlib.suppress(Exception):
            job.exception(timeout=max(0.0, deadline - time.monotonic()))
