"""Preparing frames before the worker sees them: decode and resize in a pool, lanes in turn."""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from ..errors import ImageError
from ..vision.preprocess import PreparedFrame, prepare_frame
from .heap import trimmer

if TYPE_CHECKING:
    from ..models.model import ResizeMode
    from .shared import Shared

_LOGGER = logging.getLogger(__name__)


def pool_size() -> int:
    """Threads for decoding and post-processing: the machine's cores, at most four."""
    return min(4, os.cpu_count() or 1)


def make_pool() -> ThreadPoolExecutor:
    """Make a thread pool for preparing frames, to share between executors."""
    return ThreadPoolExecutor(max_workers=pool_size(), thread_name_prefix="coral-vision-prepare")


class Preparation:
    """Keeps up to pool_size() prepare jobs in the pool while frames wait unprepared."""

    def __init__(self, shared: Shared, pool: ThreadPoolExecutor, resize: ResizeMode | None) -> None:
        """Prepare the shared table's frames in `pool`; resize None: as each model wants."""
        self._shared = shared
        self._pool = pool
        self._resize = resize
        self._heap = trimmer()
        self._limit = pool_size()
        self._jobs = 0

    def schedule_locked(self) -> None:
        """Start prepare jobs for frames waiting unprepared (with the shared lock held)."""
        needing = self._shared.table.unprepared()
        while self._jobs < min(self._limit, needing):
            try:
                self._pool.submit(self._prepare_one)
            except RuntimeError:
                # The shared pool is shut down: the frames will fail at close().
                return
            self._jobs += 1

    def _prepare_one(self) -> None:
        """Prepare the next unprepared frame (the lanes take turns), oldest first in each."""
        shared = self._shared
        with shared.lock:
            self._jobs -= 1
            if shared.closed:
                return
            request = shared.table.next_to_prepare()
            if request is None:
                return
            spec = shared.model.input
        started = time.perf_counter()
        frame: PreparedFrame | None = None
        error: ImageError | None = None
        try:
            frame = prepare_frame(request.data, spec, resize=self._resize)
        except ImageError as err:
            error = err
        except Exception as err:  # a bad image must fail its request, nothing more
            _LOGGER.debug("%s: preparing a frame failed", shared.name, exc_info=True)
            error = ImageError(f"cannot prepare the image: {err}")
        elapsed = (time.perf_counter() - started) * 1000
        with shared.lock:
            request.preparing = False
            current = shared.table.is_waiting(request)
            if frame is not None and current:
                if spec == shared.model.input:
                    request.frame, request.spec, request.preprocess_ms = frame, spec, elapsed
                    shared.work.notify()
            elif error is not None and current:
                shared.table.unqueue(request)
            self.schedule_locked()
        if error is not None and current:
            shared.fail(request, error)
        self._heap.maybe_trim()  # here, off the event loop and off the worker's invoke
