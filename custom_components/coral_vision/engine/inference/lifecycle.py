"""The backend's lifecycle: open it, fall back to the CPU, reopen it, and keep track of stuck workers.

A thread stuck in a native call cannot be stopped, only abandoned. While an abandoned call on an
Edge TPU has not returned, the new worker does not open that TPU again: it runs on the CPU
(FallbackReason.HUNG) and goes back to the TPU once the call returns or the device enumerates
again. So at most one thread per device is ever stuck, and it ends as soon as its call returns,
without touching the executor again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..errors import CoralVisionError
from ..runtime import Runtime
from .delegate import Backend, BackendInfo, FallbackReason, open_backend
from .devices import EdgeTpu
from .requests import Request, Swap, resolve

if TYPE_CHECKING:
    from ..models.model import Model
    from .preparation import Preparation
    from .shared import Shared

_LOGGER = logging.getLogger(__name__)

# How often a worker without a backend tries again to open one.
REOPEN_INTERVAL_S = 5.0
# How often a worker on the CPU because its Edge TPU hung looks whether the TPU enumerated again.
RECHECK_INTERVAL_S = 5.0

type Call = Literal["invoke", "open"]
# The Edge TPU to open (None: the CPU) and, when it can't be, why.
type Choice = tuple[EdgeTpu | None, tuple[FallbackReason, str] | None]


@dataclass(eq=False)
class Worker:
    """The thread that owns a backend, and what the watchdog needs to see of it."""

    thread: threading.Thread | None = None
    request: Request | None = None
    swap: Swap | None = None
    # The native call it is in: an invoke, or opening a backend on `call_device` (None: CPU).
    call: Call | None = None
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
        """Whether the watchdog abandons this call past the hang limit (CPU opens are slow)."""
        return self.call == "invoke" or (self.call == "open" and self.call_device is not None)

    def stuck_on(self, device: str | None) -> bool:
        """Whether this abandoned worker is still stuck on the same instance of `device`."""
        return (
            self.abandoned
            and not self.returned
            and not self.reenumerated
            and self.call_device == device
        )


@dataclass(frozen=True, kw_only=True)
class BackendOptions:
    """How an executor opens backends."""

    tpu: EdgeTpu | None
    num_threads: int
    runtime: Runtime | None
    list_tpus: Callable[[], Sequence[EdgeTpu]]
    on_backend_change: Callable[[BackendInfo], None] | None


class Lifecycle:
    """Opens, falls back, reopens and swaps the worker's backend; tracks stuck workers."""

    def __init__(self, shared: Shared, preparation: Preparation, options: BackendOptions) -> None:
        """Manage the backends of the executor that shares `shared`."""
        self._shared = shared
        self._preparation = preparation
        self._options = options
        # The worker frames run on, and the ones abandoned in a native call.
        self.worker = Worker()
        self.abandoned: list[Worker] = []

    # -- native calls, watched by the watchdog --------------------------------------------

    def enter_call_locked(self, worker: Worker, call: Call, device: str | None) -> None:
        """Mark the worker as in a native call, for the watchdog to watch."""
        shared = self._shared
        worker.call, worker.call_started, worker.call_device = call, time.monotonic(), device
        due = worker.call_started + shared.hang_limit
        if worker.watched and (shared.watch_due is None or due < shared.watch_due):
            shared.watch.notify()

    def leave_call(self, worker: Worker) -> bool:
        """Mark the call as returned; False when the worker was abandoned meanwhile."""
        shared = self._shared
        with shared.lock:
            worker.call = None
            if not worker.abandoned:
                return True
            worker.returned = True
            if worker.call_device is not None and not shared.closed:
                # The Edge TPU answers again: the current worker may go back to it.
                shared.tpu_returned = True
                shared.work.notify_all()
            return False

    def abandon_locked(self, worker: Worker) -> tuple[Request | None, Swap | None]:
        """Give up on a stuck worker; return what it was doing, for the caller to fail."""
        worker.abandoned = True
        self.abandoned = [w for w in self.abandoned if w.thread is None or w.thread.is_alive()]
        self.abandoned.append(worker)
        request, worker.request = worker.request, None
        swap, worker.swap = worker.swap, None
        return request, swap

    def recheck_wait_locked(self, worker: Worker) -> float | None:
        """Seconds until a worker on the CPU for a hung TPU looks at it again; None: never."""
        if worker.info is None or worker.info.fallback_reason is not FallbackReason.HUNG:
            return None
        return max(0.0, worker.recheck_at - time.monotonic())

    # -- opening backends (worker thread) ---------------------------------------------------

    def open(
        self,
        model: Model,
        tpu: EdgeTpu | None,
        cpu_model: Model | None,
        unavailable: tuple[FallbackReason, str] | None = None,
    ) -> Backend:
        """Open a backend, unwatched (the first one: the constructor waits for it)."""
        return open_backend(
            model,
            tpu,
            cpu_model=cpu_model,
            num_threads=self._options.num_threads,
            runtime=self._options.runtime,
            unavailable=unavailable,
        )

    def _open_watched(
        self, worker: Worker, model: Model, choice: Choice, cpu_model: Model | None
    ) -> Backend | None:
        """Open a backend with the watchdog watching; None when it gave up on the worker."""
        tpu, unavailable = choice
        with self._shared.lock:
            self.enter_call_locked(worker, "open", tpu.device if tpu else None)
        try:
            backend = self.open(model, tpu, cpu_model, unavailable)
        finally:
            mine = self.leave_call(worker)
        if not mine:
            backend.close()  # free the Edge TPU: nobody will use this backend
            return None
        return backend

    def _find_tpu(self) -> Choice:
        """The configured Edge TPU if it is listed (again) and not hung, else None and why."""
        configured = self._options.tpu
        if configured is None:
            return None, None
        try:
            listed = self._options.list_tpus()
        except OSError:
            return None, None
        tpu = next((t for t in listed if t.device == configured.device), None)
        with self._shared.lock:
            hung = self._still_hung_locked(configured.device, tpu)
        if tpu is None:
            return None, None
        if hung:
            why = (
                f"{tpu.label} ({tpu.device}) stopped responding: a call to it has not returned "
                f"within {self._shared.hang_limit:g} s; it is used again once that call returns "
                "or the device is plugged in again"
            )
            return None, (FallbackReason.HUNG, why)
        return tpu, None

    def _still_hung_locked(self, device: str, listed: EdgeTpu | None) -> bool:
        """Whether an abandoned call is stuck on this instance of the device (as listed now)."""
        hung = False
        for stuck in self.abandoned:
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

    def reopen(
        self, worker: Worker, *, throttled: bool = False, choice: Choice | None = None
    ) -> Backend | None:
        """Open a backend after a loss: the Edge TPU if usable, else the CPU; report it."""
        shared = self._shared
        now = time.monotonic()
        if throttled and now < worker.reopen_at:
            return None
        worker.reopen_at = now + REOPEN_INTERVAL_S
        with shared.lock:
            model, cpu_model = shared.model, shared.cpu_model
        try:
            backend = self._open_watched(worker, model, choice or self._find_tpu(), cpu_model)
        except CoralVisionError as err:
            with shared.lock:
                if worker.abandoned or shared.closed:
                    return None
                shared.backend_info = None
            _LOGGER.error("%s: cannot open a backend: %s", shared.name, err)
            worker.open_error = err
            return None
        if backend is None:
            return None
        worker.open_error = None
        worker.tpu_errors = 0
        worker.recheck_at = time.monotonic() + RECHECK_INTERVAL_S
        self._changed(worker, backend.info)
        return backend

    def retry_tpu(self, worker: Worker, backend: Backend | None) -> Backend | None:
        """Go back to the Edge TPU when it is usable again: its hung call returned, or it is new."""
        worker.recheck_at = time.monotonic() + RECHECK_INTERVAL_S
        if backend is not None and backend.info.kind != "cpu":
            return backend
        choice = self._find_tpu()
        if choice[0] is None:
            return backend
        if backend is not None:
            backend.close()
        return self.reopen(worker, choice=choice)

    def apply_swap(self, worker: Worker, backend: Backend | None, swap: Swap) -> Backend | None:
        """Open the new model's backend; keep the old one when that fails."""
        shared = self._shared
        if backend is not None:
            # An Edge TPU may not hold two interpreters at once: free it before opening.
            backend.close()
        try:
            new = self._open_watched(worker, swap.model, self._find_tpu(), swap.cpu_model)
        except CoralVisionError as err:
            if worker.abandoned:
                return None
            with shared.lock:
                worker.swap = None
            resolve(swap.future, error=err)
            return self.reopen(worker) if backend is not None else None
        if new is None:
            return None  # abandoned while opening: the watchdog failed the swap
        with shared.lock:
            worker.swap = None
            shared.model, shared.cpu_model = swap.model, swap.cpu_model
            shared.backend_info = new.info
            # Frames prepared for the old input size are prepared again before they run.
            shared.table.unprepare_other_than(swap.model.input)
            self._preparation.schedule_locked()
        resolve(swap.future, result=new.info)
        worker.recheck_at = time.monotonic() + RECHECK_INTERVAL_S
        self._changed(worker, new.info)
        return new

    def _changed(self, worker: Worker, info: BackendInfo) -> None:
        shared = self._shared
        with shared.lock:
            if worker.abandoned or shared.closed:
                return
            worker.info = info
            shared.backend_info = info
        shared.stats.backend_changed()
        if (listener := self._options.on_backend_change) is not None:
            try:
                listener(info)
            except Exception:  # a listener's bug must not stop inference
                _LOGGER.exception("%s: on_backend_change failed", shared.name)


def _identity(tpu: EdgeTpu) -> tuple[str, str]:
    """What changes when a device enumerates again: its path or its bus address."""
    return tpu.path, tpu.address
