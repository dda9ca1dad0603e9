"""What one executor's threads share, under one lock: the table, the model, the backend state."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ..errors import CoralVisionError, ExecutorClosedError, RequestTimeoutError
from ..results import FrameResult
from .requests import Request, RequestTable, resolve
from .stats import StatsRecorder

if TYPE_CHECKING:
    from ..models.model import Model
    from .delegate import BackendInfo


class Shared:
    """The lock, its two conditions and the state they guard; fields change only under `lock`."""

    def __init__(
        self,
        name: str,
        model: Model,
        cpu_model: Model | None,
        table: RequestTable,
        stats: StatsRecorder,
        hang_limit: float,
    ) -> None:
        """State for a new executor."""
        self.name = name
        self.model = model
        self.cpu_model = cpu_model
        self.table = table
        self.stats = stats
        self.hang_limit = hang_limit
        self.lock = threading.Lock()
        # The worker waits on `work` (frames, swaps, retries); the watchdog on `watch`.
        self.work = threading.Condition(self.lock)
        self.watch = threading.Condition(self.lock)
        self.closed = False
        self.close_deadline = 0.0
        self.backend_info: BackendInfo | None = None
        # When the watchdog wakes next (None: only when told).
        self.watch_due: float | None = None
        # An abandoned call on the Edge TPU returned: the worker may go back to it.
        self.tpu_returned = False

    def closed_error(self) -> ExecutorClosedError:
        """The error of work refused or failed because the executor closed."""
        return ExecutorClosedError(f"executor {self.name} closed")

    def settle(
        self,
        request: Request,
        result: FrameResult | None = None,
        error: CoralVisionError | None = None,
    ) -> bool:
        """Settle a request once; False when it was already settled (timeout, supersede...)."""
        with self.lock:
            if not self.table.settle(request):
                return False
        if error is not None:
            if isinstance(error, RequestTimeoutError):
                self.stats.timed_out()
            else:
                self.stats.failed()
            resolve(request.future, error=error)
        elif result is not None:
            self.stats.done(result.inference_ms)
            resolve(request.future, result=result)
        return True

    def fail(self, request: Request, error: CoralVisionError) -> None:
        """Settle a request with an error (unless it is settled already)."""
        self.settle(request, error=error)
