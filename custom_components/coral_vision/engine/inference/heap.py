"""Hand the memory of freed frames back to the system now and then (glibc only)."""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable

_LOGGER = logging.getLogger(__name__)

# Decoding and resizing frames on several threads spreads glibc's heap over several arenas,
# whose freed pages glibc keeps: in Home Assistant, where many threads allocate, the resident
# memory then climbs for hours (benchmarks/soak.py). A trim takes under a millisecond.
TRIM_INTERVAL_S = 30.0


def load_malloc_trim() -> Callable[[int], int] | None:
    """Return glibc's malloc_trim, or None where the C library is another (musl, macOS)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


class HeapTrimmer:
    """Calls malloc_trim(0) at most once per interval, from whichever thread asks first."""

    def __init__(
        self,
        trim: Callable[[int], int] | None,
        interval: float = TRIM_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Trim with `trim` (None: never) every `interval` seconds of `clock`."""
        self._trim = trim
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._next = clock() + interval

    def maybe_trim(self) -> None:
        """Trim if the interval has passed since the last trim (never blocks on another trim)."""
        if self._trim is None or self._clock() < self._next:
            return
        if not self._lock.acquire(blocking=False):
            return  # another thread is trimming
        try:
            self._next = self._clock() + self._interval
            self._trim(0)
        except Exception:  # a failed trim costs memory, never a frame
            _LOGGER.debug("malloc_trim failed; not trying again", exc_info=True)
            self._trim = None
        finally:
            self._lock.release()


_TRIMMER: HeapTrimmer | None = None
_TRIMMER_LOCK = threading.Lock()


def trimmer() -> HeapTrimmer:
    """The process's trimmer (the heap is the process's, whichever pool prepared the frames)."""
    global _TRIMMER  # noqa: PLW0603
    with _TRIMMER_LOCK:
        if _TRIMMER is None:
            _TRIMMER = HeapTrimmer(load_malloc_trim())
        return _TRIMMER
