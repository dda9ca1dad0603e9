"""The watchdog thread: expires requests at their deadline and replaces a worker stuck too long."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import DelegateError, InferenceError, RequestTimeoutError
from .lifecycle import Worker
from .requests import Request, Swap, resolve

if TYPE_CHECKING:
    from .lifecycle import Lifecycle
    from .shared import Shared

_LOGGER = logging.getLogger(__name__)


class Watchdog:
    """One thread per executor, asleep until the next deadline or hang limit."""

    def __init__(self, shared: Shared, lifecycle: Lifecycle, respawn: Callable[[], Worker]) -> None:
        """Watch the shared table and the lifecycle's worker; `respawn` starts a new worker."""
        self._shared = shared
        self._lifecycle = lifecycle
        self._respawn = respawn
        self._thread = threading.Thread(
            target=self._run, name=f"coral-vision-watchdog-{shared.name}", daemon=True
        )

    def start(self) -> None:
        """Start watching."""
        self._thread.start()

    def join(self) -> None:
        """Wait for the thread, which ends once the executor is closed."""
        self._thread.join()

    def _run(self) -> None:
        """Expire requests at their deadline; replace a worker stuck in a native call."""
        shared = self._shared
        while True:
            with shared.lock:
                if shared.closed:
                    return
                now = time.monotonic()
                expired = shared.table.expired(now)
                hung = self._give_up_hung_locked(now)
                if not expired and hung is None:
                    shared.watch_due = self._next_due_locked()
                    wait = None if shared.watch_due is None else max(0.0, shared.watch_due - now)
                    shared.watch.wait(wait)
                    continue
            for request in expired:
                shared.settle(
                    request,
                    error=RequestTimeoutError(
                        f"the frame from {request.source_id} did not finish within "
                        f"{request.timeout:g} s"
                    ),
                )
            if hung is not None:
                self._fail_hung(*hung)

    def _give_up_hung_locked(self, now: float) -> tuple[Request | None, Swap | None, Worker] | None:
        """Stop waiting for a worker stuck past the hang limit; return what it held."""
        shared, lifecycle = self._shared, self._lifecycle
        worker = lifecycle.worker
        if not worker.watched or now - worker.call_started < shared.hang_limit:
            return None
        where = worker.call_device or "the CPU"
        if any(w.stuck_on(worker.call_device) for w in lifecycle.abandoned):
            # A second thread stuck on one device would be one more for good: let this one
            # finish its call and fail only what waits on it.
            _LOGGER.error("%s: %s is stuck again; waiting for it", shared.name, where)
            worker.call = None
            request, worker.request = worker.request, None
            return request, None, worker
        _LOGGER.error(
            "%s: %s on %s hung for %.1f s; starting a new worker",
            shared.name,
            worker.call,
            where,
            now - worker.call_started,
        )
        request, swap = lifecycle.abandon_locked(worker)
        lifecycle.worker = self._respawn()
        return request, swap, worker

    def _fail_hung(self, request: Request | None, swap: Swap | None, worker: Worker) -> None:
        """Fail the frame or swap a stuck worker held."""
        limit = self._shared.hang_limit
        info = worker.info
        if request is not None:
            what = info.label if info is not None else "the backend"
            error_type = (
                DelegateError if info is not None and info.kind != "cpu" else InferenceError
            )
            self._shared.fail(
                request, error_type(f"{what} stopped responding: an invoke ran over {limit:g} s")
            )
        if swap is not None:
            resolve(
                swap.future,
                error=DelegateError(
                    f"opening {worker.call_device} ran over {limit:g} s; it stopped responding"
                ),
            )

    def _next_due_locked(self) -> float | None:
        dues = [d for d in (self._shared.table.next_deadline(),) if d is not None]
        worker = self._lifecycle.worker
        if worker.watched:
            dues.append(worker.call_started + self._shared.hang_limit)
        return min(dues, default=None)
