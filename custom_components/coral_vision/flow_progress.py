"""A flow step that waits on a task: answered at once if the task is quick, else with progress."""

from __future__ import annotations

import asyncio
from typing import Any

# A download that ends within this many seconds is answered at once, without a progress step.
QUICK_ANSWER = 1.0
# The frontend listens for the end of a progress step only once it shows the step: a shown step
# lasts at least this many seconds, so that a download ending just after it was sent is heard.
SHOWN_AT_LEAST = 2.0


async def async_wait_quick(task: asyncio.Future[Any]) -> None:
    """Wait for the task, at most QUICK_ANSWER seconds."""
    await asyncio.wait({task}, timeout=QUICK_ANSWER)


async def async_shown(download: asyncio.Future[Any]) -> None:
    """The progress step's task: the download, but lasting at least SHOWN_AT_LEAST."""
    await asyncio.sleep(SHOWN_AT_LEAST)
    await asyncio.wait({download})


def retrieve(task: asyncio.Future[Any]) -> None:
    """Take a finished task's exception, so that asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()
