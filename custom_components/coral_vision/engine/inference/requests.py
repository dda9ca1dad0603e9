"""The request table: frames accepted and not yet settled, newest per source, in two lanes.

Continuous sources (cameras) hold up to `queue_size` waiting frames, the newest per source.
On-demand requests (actions) have `on_demand_limit` places of their own, counted until they
resolve. The lanes take turns, both to be prepared and to be invoked.

The table is not thread-safe by itself: the executor calls it with its lock held.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import QueueFullError
from ..results import FrameResult

if TYPE_CHECKING:
    from ..models.model import InputSpec, Model
    from ..vision.preprocess import PreparedFrame
    from .delegate import BackendInfo


@dataclass(eq=False)
class Request:
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
class Swap:
    """A model swap waiting for the worker."""

    model: Model
    cpu_model: Model | None
    future: Future[BackendInfo]


class RequestTable:
    """Waiting frames (one per source) and live ones (accepted, not settled)."""

    def __init__(self, name: str, queue_size: int, on_demand_limit: int) -> None:
        """An empty table with `queue_size` continuous and `on_demand_limit` on-demand places."""
        if queue_size < 1 or on_demand_limit < 1:
            raise ValueError("queue_size and on_demand_limit must be at least 1")
        self.name = name
        self.queue_size = queue_size
        self.on_demand_limit = on_demand_limit
        self.waiting: dict[str, Request] = {}
        self.live: set[Request] = set()
        # Whose turn it is (True: the on-demand lane) to be invoked next, and to be prepared.
        self._invoke_on_demand = False
        self._prepare_on_demand = False

    def refusal(self, on_demand: bool) -> QueueFullError | None:
        """Why a request from a new source cannot be taken now; None when it can."""
        if on_demand:
            if sum(1 for r in self.live if r.on_demand) >= self.on_demand_limit:
                return QueueFullError(
                    f"executor {self.name} already runs {self.on_demand_limit} on-demand frames"
                )
        elif sum(1 for r in self.waiting.values() if not r.on_demand) >= self.queue_size:
            return QueueFullError(f"executor {self.name} already holds {self.queue_size} frames")
        return None

    def add(self, request: Request) -> Request | None:
        """Queue a request; return the older frame of its source that it replaces."""
        previous = self.waiting.get(request.source_id)
        # Same key: the newer frame takes the older one's place in line.
        self.waiting[request.source_id] = request
        self.live.add(request)
        if previous is not None:
            self.live.discard(previous)
        return previous

    def is_waiting(self, request: Request) -> bool:
        """Whether the request is still its source's waiting frame."""
        return self.waiting.get(request.source_id) is request

    def unqueue(self, request: Request) -> None:
        """Take a request out of line if it is still there (it stays live)."""
        if self.is_waiting(request):
            del self.waiting[request.source_id]

    def forget(self, request: Request) -> None:
        """Drop a cancelled request altogether."""
        self.unqueue(request)
        self.live.discard(request)

    def settle(self, request: Request) -> bool:
        """Mark a request settled; False when it was already (timeout, superseded, closed)."""
        if request not in self.live:
            return False
        self.live.discard(request)
        return True

    def drain(self) -> list[Request]:
        """Empty the line; return what waited."""
        waiting = list(self.waiting.values())
        self.waiting.clear()
        return waiting

    def expired(self, now: float) -> list[Request]:
        """Live requests past their deadline, taken out of line."""
        expired = [r for r in self.live if r.deadline is not None and r.deadline <= now]
        for request in expired:
            self.unqueue(request)
        return expired

    def next_deadline(self) -> float | None:
        """The earliest deadline of a live request."""
        return min((r.deadline for r in self.live if r.deadline is not None), default=None)

    def unprepared(self) -> int:
        """Waiting frames nobody prepares yet."""
        return sum(1 for r in self.waiting.values() if r.frame is None and not r.preparing)

    def next_to_prepare(self) -> Request | None:
        """The next unprepared frame (the lanes take turns), marked as being prepared."""
        request = self._oldest(
            lambda r: r.frame is None and not r.preparing, self._prepare_on_demand
        )
        if request is not None:
            self._prepare_on_demand = not request.on_demand
            request.preparing = True
        return request

    def unprepare_other_than(self, spec: InputSpec) -> None:
        """Forget frames prepared for another input (before a swap)."""
        for request in self.waiting.values():
            if request.frame is not None and request.spec != spec:
                request.frame = None

    def take_ready(self) -> Request | None:
        """Take the next prepared frame out of line (the lanes take turns), set running."""
        while (
            request := self._oldest(lambda r: r.frame is not None, self._invoke_on_demand)
        ) is not None:
            del self.waiting[request.source_id]
            if request.future.set_running_or_notify_cancel():
                self._invoke_on_demand = not request.on_demand
                return request
            self.live.discard(request)
        return None

    def _oldest(self, wanted: Callable[[Request], bool], on_demand_first: bool) -> Request | None:
        """The oldest wanted frame of the lane whose turn it is, else of the other lane."""
        other: Request | None = None
        for request in self.waiting.values():
            if not wanted(request):
                continue
            if request.on_demand == on_demand_first:
                return request
            if other is None:
                other = request
        return other


def resolve(future: Future[Any], *, result: Any = None, error: BaseException | None = None) -> None:
    """Settle a future unless the caller cancelled it or someone settled it first."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass
