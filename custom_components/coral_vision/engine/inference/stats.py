"""Executor statistics: thread-safe counters and an immutable snapshot of them."""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace

from .delegate import BackendInfo

# Enough recent invokes for a stable p95 while still following a change of backend quickly.
WINDOW = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutorStats:
    """A point-in-time view of one executor; inference times cover the last WINDOW frames."""

    frames_done: int
    frames_dropped: int
    frames_failed: int
    frames_rejected: int
    frames_timed_out: int
    inference_p50_ms: float | None
    inference_p95_ms: float | None
    queue_depth: int
    queue_peak: int
    queue_limit: int
    backend: BackendInfo | None
    backend_changes: int


def percentile(values: list[float], fraction: float) -> float | None:
    """Return the nearest-rank percentile of values (fraction in 0..1), None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = min(max(1, math.ceil(fraction * len(ordered))), len(ordered))
    return ordered[rank - 1]


class StatsRecorder:
    """Counters the executor's threads update; snapshot() is safe from any thread."""

    def __init__(self, queue_limit: int) -> None:
        """Start every counter at zero."""
        self._lock = threading.Lock()
        self._queue_limit = queue_limit
        self._inference_ms: deque[float] = deque(maxlen=WINDOW)
        self._done = self._dropped = self._failed = self._rejected = self._timed_out = 0
        self._backend_changes = 0
        self._queue_peak = 0

    def done(self, inference_ms: float) -> None:
        """Count a frame that produced a result."""
        with self._lock:
            self._done += 1
            self._inference_ms.append(inference_ms)

    def dropped(self) -> None:
        """Count a frame superseded by a newer one from its source."""
        with self._lock:
            self._dropped += 1

    def failed(self) -> None:
        """Count a frame that failed (bad image, inference error, backend loss, shutdown)."""
        with self._lock:
            self._failed += 1

    def rejected(self) -> None:
        """Count a frame refused because the queue was full."""
        with self._lock:
            self._rejected += 1

    def timed_out(self) -> None:
        """Count a frame that missed its deadline."""
        with self._lock:
            self._timed_out += 1

    def backend_changed(self) -> None:
        """Count a replaced backend (recovery or model swap)."""
        with self._lock:
            self._backend_changes += 1

    def queue_depth(self, depth: int) -> None:
        """Remember the deepest queue seen."""
        with self._lock:
            self._queue_peak = max(self._queue_peak, depth)

    def snapshot(self, *, queue_depth: int, backend: BackendInfo | None) -> ExecutorStats:
        """Freeze the counters together with the current queue depth and backend."""
        with self._lock:
            times = list(self._inference_ms)
            return ExecutorStats(
                frames_done=self._done,
                frames_dropped=self._dropped,
                frames_failed=self._failed,
                frames_rejected=self._rejected,
                frames_timed_out=self._timed_out,
                inference_p50_ms=percentile(times, 0.50),
                inference_p95_ms=percentile(times, 0.95),
                queue_depth=queue_depth,
                queue_peak=self._queue_peak,
                queue_limit=self._queue_limit,
                backend=backend,
                backend_changes=self._backend_changes,
            )


def total_stats(stats: Iterable[ExecutorStats]) -> ExecutorStats:
    """Add up executors' statistics into one; a single executor's are its own.

    The pool's p50 is the members' p50s weighted by frames done (a median is not additive),
    its p95 the worst member's.
    """
    members = list(stats)
    if len(members) == 1:
        return members[0]
    weights = [(s.inference_p50_ms, s.frames_done) for s in members if s.inference_p50_ms]
    frames = sum(w for _, w in weights)
    p50 = sum(p * w for p, w in weights) / frames if frames else None
    p95s = [s.inference_p95_ms for s in members if s.inference_p95_ms is not None]
    return replace(
        members[0],
        frames_done=sum(s.frames_done for s in members),
        frames_dropped=sum(s.frames_dropped for s in members),
        frames_failed=sum(s.frames_failed for s in members),
        frames_rejected=sum(s.frames_rejected for s in members),
        frames_timed_out=sum(s.frames_timed_out for s in members),
        inference_p50_ms=p50,
        inference_p95_ms=max(p95s) if p95s else None,
        queue_depth=sum(s.queue_depth for s in members),
        queue_peak=sum(s.queue_peak for s in members),
        queue_limit=sum(s.queue_limit for s in members),
        backend_changes=sum(s.backend_changes for s in members),
    )
