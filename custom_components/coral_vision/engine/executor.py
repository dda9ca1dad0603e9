"""Run frames on one accelerator: a thread owns the interpreter, a shared pool does the rest.

Threads of one executor:
- the worker opens the Backend, then only sets the input, invokes and copies the outputs;
- the supervisor expires requests at their deadline and replaces a worker stuck past the hang
  limit in an invoke or in opening an Edge TPU;
- a small thread pool (shared between executors when given) decodes and resizes images before
  the worker sees them and turns raw outputs into results after it.

A thread stuck in a native call cannot be stopped, only abandoned. While an abandoned call on an
Edge TPU has not returned, the new worker does not open that TPU again: it runs on the CPU
(FallbackReason.HUNG) and goes back to the TPU once the call returns or the device enumerates
again. So at most one thread per device is ever stuck, and it ends as soon as its call returns,
without touching the executor again.

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
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy.typing as npt

from .delegate import Backend, BackendInfo, FallbackReason, open_backend
from .detect import decode_outputs
from .devices import EdgeTpu, list_edge_tpus
from .errors import (
    CoralVisionError,
    DelegateError,
    ExecutorClosedError,
    FrameSupersededError,
    ImageError,
    InferenceError,
    QueueFullError,
    RequestTimeoutError,
)
from .models import InputSpec, Model
from .preprocess import PreparedFrame, ResizeMode, prepare_frame
from .results import FrameResult
from .runtime import Runtime
from .stats import ExecutorStats, StatsRecorder

_LOGGER = logging.getLogger(__name__)

# Consecutive InferenceErrors after which an Edge TPU is taken to be gone (one may be a bad frame).
TPU_ERROR_LIMIT = 3
# How long close() waits for a worker abandoned earlier (it already ran over the hang limit).
ABANDONED_JOIN_S = 1.0
# How long close() waits for results still being decoded in the pool.
POSTPROCESS_JOIN_S = 5.0
# How often a worker without a backend tries again to open one.
REOPEN_INTERVAL_S = 5.0
# How often a worker on the CPU because its Edge TPU hung looks whether the TPU enumerated again.
RECHECK_INTERVAL_S = 5.0
# On-demand frames (actions) in flight at once: enough for a burst, never a camera's place.
ON_DEMAND_LIMIT = 4

type _Call = Literal["invoke", "open"]


def pool_size() -> int:
    """Threads for decoding and post-processing: the machine's cores, at most four."""
    return min(4, os.cpu_count() or 1)


def default_num_threads() -> int:
    """Return the CPU interpreter's threads: half the cores, leaving the rest to decoding."""
    # Decoding a 1080p JPEG costs about half an invoke of CPU, so on 2 cores a 2-thread
    # interpreter's ceiling (~100 frames/s) is out of reach (~0.56 of it, ~60 frames/s), while
    # 1 thread runs at ~0.97 of its own (~57 frames/s) (benchmarks/engine_throughput.py).
    return max(1, (os.cpu_count() or 1) // 2)


def make_pool() -> ThreadPoolExecutor:
    """Make a thread pool for preparing frames, to share between executors."""
    return ThreadPoolExecutor(max_workers=pool_size(), thread_name_prefix="coral-vision-prepare")


@dataclass(eq=False)
class _Request:
    """One frame on its way through the executor."""

    source_id: str
    data: bytes
    future: Future[FrameResult]
    timeout: float | None
    deadline: float | None
    on_demand: bool = False
    frame: PreparedFrame | None = None
    spec: InputSpec | None = None
    preparing: bool = False
    preprocess_ms: float = 0.0


@dataclass(eq=False)
class _Swap:
    """A model swap waiting for the worker."""

    model: Model
    cpu_model: Model | None
    future: Future[BackendInfo]


@dataclass(frozen=True)
class _Retry:
    """Ask the worker to try its Edge TPU again (a hung call returned, or time to look)."""


_RETRY = _Retry()


@dataclass(eq=False)
class _Worker:
    """The thread that owns a backend, and what the supervisor needs to see of it."""

    thread: threading.Thread | None = None
    request: _Request | None = None
    swap: _Swap | None = None
    # The native call it is in: an invoke, or opening a backend on `call_device` (None: CPU).
    call: _Call | None = None
    call_started: float = 0.0
    call_device: str | None = None
    info: BackendInfo | None = None
    tpu_errors: int = 0
    reopen_at: float = 0.0
    recheck_at: float = 0.0
    open_error: CoralVisionError | None = None
    abandoned: bool = False
    # Once abandoned: whether its call returned, and how its Edge TPU was listed after the hang.
    returned: bool = False
    seen_as: EdgeTpu | None = None
    reenumerated: bool = False

    @property
    def watched(self) -> bool:
        """Whether the supervisor abandons this call past the hang limit (CPU opens are slow)."""
        return self.call == "invoke" or (self.call == "open" and self.call_device is not None)

    def stuck_on(self, device: str | None) -> bool:
        """Whether this abandoned worker is still stuck on the same instance of `device`."""
        return (
            self.abandoned
            and not self.returned
            and not self.reenumerated
            and self.call_device == device
        )


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
        resize: ResizeMode = "stretch",
        pool: ThreadPoolExecutor | None = None,
        on_backend_change: Callable[[BackendInfo], None] | None = None,
        list_tpus: Callable[[], Sequence[EdgeTpu]] = list_edge_tpus,
    ) -> None:
        """Open the backend on a new worker thread; raise what opening it raised."""
        if queue_size < 1 or on_demand_limit < 1:
            raise ValueError("queue_size and on_demand_limit must be at least 1")
        self.name = name or (tpu.device if tpu else "cpu")
        self._model = model
        self._cpu_model = cpu_model
        self._tpu = tpu
        self._num_threads = num_threads or default_num_threads()
        self._runtime = runtime
        self._queue_size = queue_size
        self._on_demand_limit = on_demand_limit
        self._timeout = timeout
        self._hang_limit = hang_limit
        self._threshold = threshold
        self._top_k = top_k
        self._resize: ResizeMode = resize
        self._on_backend_change = on_backend_change
        self._list_tpus = list_tpus
        self._own_pool = pool is None
        self._pool = pool or make_pool()
        self._prepare_limit = pool_size()
        self._stats = StatsRecorder(queue_size)

        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._watch = threading.Condition(self._lock)
        self._waiting: dict[str, _Request] = {}
        self._live: set[_Request] = set()
        self._swaps: deque[_Swap] = deque()
        self._abandoned: list[_Worker] = []
        self._post_jobs: set[Future[None]] = set()
        self._prepare_jobs = 0
        self._closed = False
        self._close_deadline = 0.0
        self._backend_info: BackendInfo | None = None
        self._watch_due: float | None = None
        self._tpu_returned = False
        # Whose turn it is (True: the on-demand lane) to be invoked next, and to be prepared.
        self._invoke_on_demand = False
        self._prepare_on_demand = False

        ready: Future[BackendInfo] = Future()
        self._worker = self._spawn(ready)
        try:
            self._backend_info = ready.result()
        except BaseException:
            self._join_worker(self._worker, time.monotonic() + self._hang_limit)
            if self._own_pool:
                self._pool.shutdown(wait=True)
            raise
        self._supervisor = threading.Thread(
            target=self._supervise, name=f"coral-vision-watchdog-{self.name}", daemon=True
        )
        self._supervisor.start()

    # -- public API --------------------------------------------------------------------------

    @property
    def backend_info(self) -> BackendInfo | None:
        """The backend frames run on now (None while none could be opened)."""
        with self._lock:
            return self._backend_info

    @property
    def model(self) -> Model:
        """The model new frames run on."""
        with self._lock:
            return self._model

    @property
    def closed(self) -> bool:
        """Whether close() was called."""
        with self._lock:
            return self._closed

    @property
    def queue_depth(self) -> int:
        """Frames accepted and not yet invoking."""
        with self._lock:
            return len(self._waiting)

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
        future: Future[FrameResult] = Future()
        limit = self._timeout if timeout is None else timeout
        now = time.monotonic()
        request = _Request(
            source_id=source_id,
            data=image,
            future=future,
            timeout=limit,
            deadline=None if limit is None else now + limit,
            on_demand=on_demand,
        )
        superseded: _Request | None = None
        refused: CoralVisionError | None = None
        with self._lock:
            previous = self._waiting.get(source_id)
            if self._closed:
                refused = ExecutorClosedError(f"executor {self.name} is closed")
            elif previous is None:
                refused = self._refusal_locked(on_demand)
            if refused is None:
                # Same key: the newer frame takes the older one's place in line.
                self._waiting[source_id] = request
                self._live.add(request)
                if previous is not None:
                    superseded = previous
                    self._live.discard(previous)
                self._stats.queue_depth(len(self._waiting))
                self._schedule_prepare_locked()
                if request.deadline is not None and (
                    self._watch_due is None or request.deadline < self._watch_due
                ):
                    self._watch.notify()
        if refused is not None:
            if isinstance(refused, QueueFullError):
                self._stats.rejected()
            future.set_exception(refused)
            return future
        future.add_done_callback(lambda _: self._forget_cancelled(request))
        if superseded is not None:
            self._stats.dropped()
            _resolve(
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
        with self._lock:
            if self._closed:
                future.set_exception(ExecutorClosedError(f"executor {self.name} is closed"))
                return future
            self._swaps.append(_Swap(model, cpu_model, future))
            self._work.notify_all()
        return future

    def swap_model(self, model: Model, cpu_model: Model | None = None) -> BackendInfo:
        """Swap the model, blocking until the new backend runs (or raising why it can't)."""
        return self.submit_swap(model, cpu_model).result()

    async def async_swap_model(self, model: Model, cpu_model: Model | None = None) -> BackendInfo:
        """Swap the model and wait for the new backend."""
        return await asyncio.wrap_future(self.submit_swap(model, cpu_model))

    def stats(self) -> ExecutorStats:
        """Return an immutable snapshot of the counters, queue and backend."""
        with self._lock:
            depth, backend = len(self._waiting), self._backend_info
        return self._stats.snapshot(queue_depth=depth, backend=backend)

    def begin_close(self) -> None:
        """Refuse new work, fail what waits and tell the threads to end, without waiting."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._close_deadline = time.monotonic() + self._hang_limit
            waiting = list(self._waiting.values())
            self._waiting.clear()
            swaps = list(self._swaps)
            self._swaps.clear()
            self._work.notify_all()
            self._watch.notify_all()
        for request in waiting:
            self._fail(request, ExecutorClosedError(f"executor {self.name} closed"))
        for swap in swaps:
            _resolve(swap.future, error=ExecutorClosedError(f"executor {self.name} closed"))

    def close(self) -> None:
        """Stop: fail what is queued, finish or fail what runs, join every thread; idempotent.

        Returns within the hang limit of begin_close() (plus decoding what already ran): a
        worker still in a native call by then is left behind and ends when that call returns.
        """
        self.begin_close()
        with self._lock:
            worker, deadline = self._worker, self._close_deadline
        self._join_worker(worker, deadline)
        self._supervisor.join()
        with self._lock:
            abandoned = list(self._abandoned)
            jobs = list(self._post_jobs)
        give_up = min(deadline, time.monotonic() + ABANDONED_JOIN_S)
        for stuck in abandoned:
            if stuck.thread is not None:
                stuck.thread.join(max(0.0, give_up - time.monotonic()))
                if stuck.thread.is_alive():
                    _LOGGER.warning("%s: leaving a hung inference thread behind", self.name)
        _wait_all(jobs, POSTPROCESS_JOIN_S)
        with self._lock:
            leftovers = list(self._live)
        for request in leftovers:
            self._fail(request, ExecutorClosedError(f"executor {self.name} closed"))
        if self._own_pool:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Executor:
        """Use as a context manager that closes on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close."""
        self.close()

    # -- requests ----------------------------------------------------------------------------

    def _refusal_locked(self, on_demand: bool) -> QueueFullError | None:
        """Why a request from a new source cannot be taken now; None when it can."""
        if on_demand:
            if sum(1 for r in self._live if r.on_demand) >= self._on_demand_limit:
                return QueueFullError(
                    f"executor {self.name} already runs {self._on_demand_limit} on-demand frames"
                )
        elif sum(1 for r in self._waiting.values() if not r.on_demand) >= self._queue_size:
            return QueueFullError(f"executor {self.name} already holds {self._queue_size} frames")
        return None

    def _resolve(
        self,
        request: _Request,
        result: FrameResult | None = None,
        error: CoralVisionError | None = None,
    ) -> bool:
        """Settle a request once; False when it was already settled (timeout, supersede...)."""
        with self._lock:
            if request not in self._live:
                return False
            self._live.discard(request)
        if error is not None:
            if isinstance(error, RequestTimeoutError):
                self._stats.timed_out()
            else:
                self._stats.failed()
            _resolve(request.future, error=error)
        elif result is not None:
            self._stats.done(result.inference_ms)
            _resolve(request.future, result=result)
        return True

    def _fail(self, request: _Request, error: CoralVisionError) -> None:
        self._resolve(request, error=error)

    def _forget_cancelled(self, request: _Request) -> None:
        """Free a cancelled frame's place in line now, not when the worker meets it."""
        if not request.future.cancelled():
            return
        with self._lock:
            if self._waiting.get(request.source_id) is request:
                del self._waiting[request.source_id]
            self._live.discard(request)

    def _oldest_locked(
        self, wanted: Callable[[_Request], bool], on_demand_first: bool
    ) -> _Request | None:
        """The oldest wanted frame of the lane whose turn it is, else of the other lane."""
        other: _Request | None = None
        for request in self._waiting.values():
            if not wanted(request):
                continue
            if request.on_demand == on_demand_first:
                return request
            if other is None:
                other = request
        return other

    # -- preparing (pool threads) ------------------------------------------------------------

    def _schedule_prepare_locked(self) -> None:
        """Keep up to pool_size() prepare jobs in the pool while frames wait unprepared."""
        needing = sum(1 for r in self._waiting.values() if r.frame is None and not r.preparing)
        while self._prepare_jobs < min(self._prepare_limit, needing):
            try:
                self._pool.submit(self._prepare_one)
            except RuntimeError:
                # The shared pool is shut down: the frames will fail at close().
                return
            self._prepare_jobs += 1

    def _prepare_one(self) -> None:
        """Prepare the next unprepared frame (the lanes take turns), oldest first in each."""
        with self._lock:
            self._prepare_jobs -= 1
            if self._closed:
                return
            request = self._oldest_locked(
                lambda r: r.frame is None and not r.preparing, self._prepare_on_demand
            )
            if request is None:
                return
            self._prepare_on_demand = not request.on_demand
            request.preparing = True
            spec = self._model.input
        started = time.perf_counter()
        frame: PreparedFrame | None = None
        error: ImageError | None = None
        try:
            frame = prepare_frame(request.data, spec, resize=self._resize)
        except ImageError as err:
            error = err
        except Exception as err:  # a bad image must fail its request, nothing more
            _LOGGER.debug("%s: preparing a frame failed", self.name, exc_info=True)
            error = ImageError(f"cannot prepare the image: {err}")
        elapsed = (time.perf_counter() - started) * 1000
        with self._lock:
            request.preparing = False
            current = self._waiting.get(request.source_id) is request
            if frame is not None and current:
                if spec == self._model.input:
                    request.frame, request.spec, request.preprocess_ms = frame, spec, elapsed
                    self._work.notify()
            elif error is not None and current:
                del self._waiting[request.source_id]
            self._schedule_prepare_locked()
        if error is not None and current:
            self._fail(request, error)

    # -- the worker thread -------------------------------------------------------------------

    def _spawn(self, ready: Future[BackendInfo] | None) -> _Worker:
        """Start a worker thread; `ready` gets the first backend's info, else it recovers."""
        worker = _Worker()
        worker.thread = threading.Thread(
            target=self._work_loop,
            args=(worker, ready),
            name=f"coral-vision-infer-{self.name}",
            # Daemon because a hung native call can't be interrupted; close() joins the rest.
            daemon=True,
        )
        worker.thread.start()
        return worker

    def _join_worker(self, worker: _Worker, deadline: float) -> None:
        """Join a worker until `deadline`, then abandon it where it is stuck."""
        assert worker.thread is not None
        if worker.thread is threading.current_thread():
            return  # close() called from on_backend_change: the loop ends on its own
        worker.thread.join(max(0.0, deadline - time.monotonic()))
        if not worker.thread.is_alive():
            return
        with self._lock:
            if worker.abandoned:
                return
            request, swap = self._abandon_locked(worker)
        closed = ExecutorClosedError(f"executor {self.name} closed")
        if request is not None:
            self._fail(request, closed)
        if swap is not None:
            _resolve(swap.future, error=closed)

    def _abandon_locked(self, worker: _Worker) -> tuple[_Request | None, _Swap | None]:
        """Give up on a stuck worker; return what it was doing, for the caller to fail."""
        worker.abandoned = True
        self._abandoned = [w for w in self._abandoned if w.thread is None or w.thread.is_alive()]
        self._abandoned.append(worker)
        request, worker.request = worker.request, None
        swap, worker.swap = worker.swap, None
        return request, swap

    def _work_loop(self, worker: _Worker, ready: Future[BackendInfo] | None) -> None:
        backend: Backend | None = None
        try:
            if ready is not None:
                try:
                    backend = self._open(self._model, self._tpu, self._cpu_model)
                except BaseException as err:
                    ready.set_exception(err)
                    return
                worker.info = backend.info
                ready.set_result(backend.info)
            else:
                backend = self._reopen(worker)
            while (job := self._next_job(worker)) is not None:
                if isinstance(job, _Swap):
                    backend = self._apply_swap(worker, backend, job)
                elif isinstance(job, _Retry):
                    backend = self._retry_tpu(worker, backend)
                else:
                    backend = self._run(worker, backend, job)
        finally:
            if backend is not None:
                try:
                    backend.close()
                except Exception:  # closing must not hide why the thread ended
                    _LOGGER.debug("%s: closing the backend failed", self.name, exc_info=True)

    def _next_job(self, worker: _Worker) -> _Swap | _Retry | _Request | None:
        """Block until there is something to do; None when the worker should end."""
        with self._lock:
            while True:
                if worker.abandoned or self._closed:
                    return None
                if self._swaps:
                    worker.swap = self._swaps.popleft()
                    return worker.swap
                if self._tpu_returned or self._recheck_wait_locked(worker) == 0.0:
                    self._tpu_returned = False
                    return _RETRY
                request = self._take_ready_locked()
                if request is not None:
                    worker.request = request
                    return request
                self._work.wait(self._recheck_wait_locked(worker))

    def _recheck_wait_locked(self, worker: _Worker) -> float | None:
        """Seconds until a worker on the CPU for a hung TPU looks at it again; None: never."""
        if worker.info is None or worker.info.fallback_reason is not FallbackReason.HUNG:
            return None
        return max(0.0, worker.recheck_at - time.monotonic())

    def _take_ready_locked(self) -> _Request | None:
        """Take the next frame prepared for the current model out of the queue."""
        spec = self._model.input
        stale = [r for r in self._waiting.values() if r.frame is not None and r.spec != spec]
        for old in stale:
            # Prepared for the model before a swap: prepare it again.
            old.frame = None
        if stale:
            self._schedule_prepare_locked()
        while (
            request := self._oldest_locked(lambda r: r.frame is not None, self._invoke_on_demand)
        ) is not None:
            del self._waiting[request.source_id]
            if request.future.set_running_or_notify_cancel():
                self._invoke_on_demand = not request.on_demand
                return request
            self._live.discard(request)
        return None

    def _enter_call_locked(self, worker: _Worker, call: _Call, device: str | None) -> None:
        """Mark the worker as in a native call, for the supervisor to watch."""
        worker.call, worker.call_started, worker.call_device = call, time.monotonic(), device
        due = worker.call_started + self._hang_limit
        if worker.watched and (self._watch_due is None or due < self._watch_due):
            self._watch.notify()

    def _leave_call(self, worker: _Worker) -> bool:
        """Mark the call as returned; False when the worker was abandoned meanwhile."""
        with self._lock:
            worker.call = None
            if not worker.abandoned:
                return True
            worker.returned = True
            if worker.call_device is not None and not self._closed:
                # The Edge TPU answers again: the current worker may go back to it.
                self._tpu_returned = True
                self._work.notify_all()
            return False

    def _finish_invoke(self, worker: _Worker, request: _Request) -> bool:
        """Leave the invoke; False when the supervisor gave up on it meanwhile."""
        with self._lock:
            current = worker.request is request
            worker.request = None
        return self._leave_call(worker) and current

    def _run(self, worker: _Worker, backend: Backend | None, request: _Request) -> Backend | None:
        """Invoke one frame; recover the backend when an Edge TPU stops working."""
        if backend is None:
            backend = self._reopen(worker, throttled=True)
        if backend is None:
            with self._lock:
                worker.request = None
            error = worker.open_error or DelegateError(f"{self.name}: no backend could be opened")
            self._fail(request, error)
            return None
        frame = request.frame
        assert frame is not None
        with self._lock:
            if worker.abandoned:
                return backend
            self._enter_call_locked(worker, "invoke", backend.info.device)
        started = time.perf_counter()
        try:
            outputs = backend.invoke(frame)
        except (DelegateError, InferenceError) as err:
            if not self._finish_invoke(worker, request):
                return backend
            self._fail(request, err)
            if backend.info.kind == "cpu":
                return backend
            worker.tpu_errors += 1
            if isinstance(err, DelegateError) or worker.tpu_errors >= TPU_ERROR_LIMIT:
                _LOGGER.warning(
                    "%s: %s stopped working (%s); reopening", self.name, backend.info.label, err
                )
                backend.close()
                return self._reopen(worker)
            return backend
        except Exception as err:  # one frame's failure must not end the worker
            _LOGGER.exception("%s: unexpected error while invoking", self.name)
            if self._finish_invoke(worker, request):
                self._fail(request, InferenceError(f"inference failed: {err}"))
            return backend
        inference_ms = (time.perf_counter() - started) * 1000
        worker.tpu_errors = 0
        if self._finish_invoke(worker, request):
            self._post(request, backend.model, backend.info, outputs, frame, inference_ms)
        return backend

    def _post(
        self,
        request: _Request,
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
            self._fail(request, ExecutorClosedError(f"executor {self.name} closed"))
            return
        with self._lock:
            self._post_jobs.add(job)
        job.add_done_callback(self._post_done)

    def _post_done(self, job: Future[None]) -> None:
        with self._lock:
            self._post_jobs.discard(job)

    def _decode(
        self,
        request: _Request,
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
            self._fail(request, err)
            return
        except Exception as err:  # reported on the request, not lost in the pool
            _LOGGER.exception("%s: decoding outputs failed", self.name)
            self._fail(request, InferenceError(f"cannot decode the model's outputs: {err}"))
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
        self._resolve(request, result=result)

    # -- backends (worker thread) ------------------------------------------------------------

    def _open(
        self,
        model: Model,
        tpu: EdgeTpu | None,
        cpu_model: Model | None,
        unavailable: tuple[FallbackReason, str] | None = None,
    ) -> Backend:
        return open_backend(
            model,
            tpu,
            cpu_model=cpu_model,
            num_threads=self._num_threads,
            runtime=self._runtime,
            unavailable=unavailable,
        )

    def _open_watched(
        self,
        worker: _Worker,
        model: Model,
        choice: tuple[EdgeTpu | None, tuple[FallbackReason, str] | None],
        cpu_model: Model | None,
    ) -> Backend | None:
        """Open a backend with the supervisor watching; None when it gave up on the worker."""
        tpu, unavailable = choice
        with self._lock:
            self._enter_call_locked(worker, "open", tpu.device if tpu else None)
        try:
            backend = self._open(model, tpu, cpu_model, unavailable)
        finally:
            mine = self._leave_call(worker)
        if not mine:
            backend.close()  # free the Edge TPU: nobody will use this backend
            return None
        return backend

    def _find_tpu(self) -> tuple[EdgeTpu | None, tuple[FallbackReason, str] | None]:
        """The configured Edge TPU if it is listed (again) and not hung, else None and why."""
        if self._tpu is None:
            return None, None
        try:
            listed = self._list_tpus()
        except OSError:
            return None, None
        tpu = next((t for t in listed if t.device == self._tpu.device), None)
        with self._lock:
            hung = self._still_hung_locked(self._tpu.device, tpu)
        if tpu is None:
            return None, None
        if hung:
            why = (
                f"{tpu.label} ({tpu.device}) stopped responding: a call to it has not returned "
                f"within {self._hang_limit:g} s; it is used again once that call returns or the "
                "device is plugged in again"
            )
            return None, (FallbackReason.HUNG, why)
        return tpu, None

    def _still_hung_locked(self, device: str, listed: EdgeTpu | None) -> bool:
        """Whether an abandoned call is stuck on this instance of the device (as listed now)."""
        hung = False
        for stuck in self._abandoned:
            if not stuck.stuck_on(device):
                continue
            if listed is None or (
                stuck.seen_as is not None and _identity(stuck.seen_as) != _identity(listed)
            ):
                # Gone from the bus, or back at a new address: a new instance of the device.
                stuck.reenumerated = True
                continue
            if stuck.seen_as is None:
                stuck.seen_as = listed
            hung = True
        return hung

    def _reopen(
        self,
        worker: _Worker,
        *,
        throttled: bool = False,
        choice: tuple[EdgeTpu | None, tuple[FallbackReason, str] | None] | None = None,
    ) -> Backend | None:
        """Open a backend after a loss: the Edge TPU if usable, else the CPU; report it."""
        now = time.monotonic()
        if throttled and now < worker.reopen_at:
            return None
        worker.reopen_at = now + REOPEN_INTERVAL_S
        with self._lock:
            model, cpu_model = self._model, self._cpu_model
        try:
            backend = self._open_watched(worker, model, choice or self._find_tpu(), cpu_model)
        except CoralVisionError as err:
            with self._lock:
                if worker.abandoned or self._closed:
                    return None
                self._backend_info = None
            _LOGGER.error("%s: cannot open a backend: %s", self.name, err)
            worker.open_error = err
            return None
        if backend is None:
            return None
        worker.open_error = None
        worker.tpu_errors = 0
        worker.recheck_at = time.monotonic() + RECHECK_INTERVAL_S
        self._changed(worker, backend.info)
        return backend

    def _retry_tpu(self, worker: _Worker, backend: Backend | None) -> Backend | None:
        """Go back to the Edge TPU when it is usable again: its hung call returned, or it is new."""
        worker.recheck_at = time.monotonic() + RECHECK_INTERVAL_S
        if backend is not None and backend.info.kind != "cpu":
            return backend
        choice = self._find_tpu()
        if choice[0] is None:
            return backend
        if backend is not None:
            backend.close()
        return self._reopen(worker, choice=choice)

    def _apply_swap(self, worker: _Worker, backend: Backend | None, swap: _Swap) -> Backend | None:
        """Open the new model's backend; keep the old one when that fails."""
        if backend is not None:
            # An Edge TPU may not hold two interpreters at once: free it before opening.
            backend.close()
        try:
            new = self._open_watched(worker, swap.model, self._find_tpu(), swap.cpu_model)
        except CoralVisionError as err:
            if worker.abandoned:
                return None
            with self._lock:
                worker.swap = None
            _resolve(swap.future, error=err)
            return self._reopen(worker) if backend is not None else None
        if new is None:
            return None  # abandoned while opening: the supervisor failed the swap
        with self._lock:
            worker.swap = None
            self._model, self._cpu_model = swap.model, swap.cpu_model
            self._backend_info = new.info
            # Frames prepared for the old input size are prepared again before they run.
            for request in self._waiting.values():
                if request.frame is not None and request.spec != swap.model.input:
                    request.frame = None
            self._schedule_prepare_locked()
        _resolve(swap.future, result=new.info)
        worker.recheck_at = time.monotonic() + RECHECK_INTERVAL_S
        self._changed(worker, new.info)
        return new

    def _changed(self, worker: _Worker, info: BackendInfo) -> None:
        with self._lock:
            if worker.abandoned or self._closed:
                return
            worker.info = info
            self._backend_info = info
        self._stats.backend_changed()
        if self._on_backend_change is not None:
            try:
                self._on_backend_change(info)
            except Exception:  # a listener's bug must not stop inference
                _LOGGER.exception("%s: on_backend_change failed", self.name)

    # -- the supervisor thread ---------------------------------------------------------------

    def _supervise(self) -> None:
        """Expire requests at their deadline; replace a worker stuck in a native call."""
        while True:
            with self._lock:
                if self._closed:
                    return
                now = time.monotonic()
                expired = [r for r in self._live if r.deadline is not None and r.deadline <= now]
                for request in expired:
                    if self._waiting.get(request.source_id) is request:
                        del self._waiting[request.source_id]
                hung = self._give_up_hung_locked(now)
                if not expired and hung is None:
                    self._watch_due = self._next_due_locked()
                    wait = None if self._watch_due is None else max(0.0, self._watch_due - now)
                    self._watch.wait(wait)
                    continue
            for request in expired:
                self._resolve(
                    request,
                    error=RequestTimeoutError(
                        f"the frame from {request.source_id} did not finish within "
                        f"{request.timeout:g} s"
                    ),
                )
            if hung is not None:
                self._fail_hung(*hung)

    def _give_up_hung_locked(
        self, now: float
    ) -> tuple[_Request | None, _Swap | None, _Worker] | None:
        """Stop waiting for a worker stuck past the hang limit; return what it held."""
        worker = self._worker
        if not worker.watched or now - worker.call_started < self._hang_limit:
            return None
        where = worker.call_device or "the CPU"
        if any(w.stuck_on(worker.call_device) for w in self._abandoned):
            # A second thread stuck on one device would be one more for good: let this one
            # finish its call and fail only what waits on it.
            _LOGGER.error("%s: %s is stuck again; waiting for it", self.name, where)
            worker.call = None
            request, worker.request = worker.request, None
            return request, None, worker
        _LOGGER.error(
            "%s: %s on %s hung for %.1f s; starting a new worker",
            self.name,
            worker.call,
            where,
            now - worker.call_started,
        )
        request, swap = self._abandon_locked(worker)
        self._worker = self._spawn(None)
        return request, swap, worker

    def _fail_hung(self, request: _Request | None, swap: _Swap | None, worker: _Worker) -> None:
        """Fail the frame or swap a stuck worker held."""
        info = worker.info
        if request is not None:
            what = info.label if info is not None else "the backend"
            error_type = (
                DelegateError if info is not None and info.kind != "cpu" else InferenceError
            )
            self._fail(
                request,
                error_type(f"{what} stopped responding: an invoke ran over {self._hang_limit:g} s"),
            )
        if swap is not None:
            _resolve(
                swap.future,
                error=DelegateError(
                    f"opening {worker.call_device} ran over {self._hang_limit:g} s; "
                    "it stopped responding"
                ),
            )

    def _next_due_locked(self) -> float | None:
        dues = [r.deadline for r in self._live if r.deadline is not None]
        if self._worker.watched:
            dues.append(self._worker.call_started + self._hang_limit)
        return min(dues, default=None)


def _identity(tpu: EdgeTpu) -> tuple[str, str]:
    """What changes when a device enumerates again: its path or its bus address."""
    return tpu.path, tpu.address


def _resolve(
    future: Future[Any], *, result: Any = None, error: BaseException | None = None
) -> None:
    """Settle a future unless the caller cancelled it or someone settled it first."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass


def _wait_all(jobs: list[Future[None]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for job in jobs:
        # Cancelled or slow jobs are fine: close() fails whatever is left.
        with contextlib.suppress(Exception):
            job.exception(timeout=max(0.0, deadline - time.monotonic()))
