"""When a timed item's clock runs: from its start, but not while it waits for a ``rate=`` slot.

A ``task_timeout`` limits an item's own time. Under ``rate=`` the function first waits for its
slot, inside the call (``_rate``): that wait is the map's pace, not the item running long, and
counted, it failed items whose function never ran (13 of 16 at ``rate=5, task_timeout=0.5``
on 8 threads). So whoever runs a timed item says, for the thread it runs in, how its clock is
stopped and started again (``run_with``: the thread backend moves its deadline, a process
worker tells its parent when the item starts only once its slot came); the rate limit calls
``pause`` before it waits and ``restart`` once the slot came. An ``async def`` item's time
limit is an ``asyncio.Timeout`` (``_async_call``), rescheduled so through ``timeout_of_task``.

A leaf: nothing of plait is imported here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

_local = threading.local()

# The running async item's time limit and its seconds, while it runs under one.
timeout_of_task: ContextVar[tuple[asyncio.Timeout, float] | None] = ContextVar(
    "plait_timeout_of_task", default=None
)


def run_with(clock: Callable[[bool], object] | None) -> None:
    """How the clock of the timed item this thread runs now stops (``clock(False)``) and
    starts again (``clock(True)``); None: no timed item runs here."""
    _local.clock = clock


def pause() -> None:
    """The item waits for its slot: its clock stops (if it has one)."""
    clock = getattr(_local, "clock", None)
    if clock is not None:
        clock(False)


def restart() -> None:
    """The item's slot came: its clock starts now (if it has one)."""
    clock = getattr(_local, "clock", None)
    if clock is not None:
        clock(True)


def pause_async() -> None:
    """``pause`` for an ``async def`` item, on its event loop."""
    limit = timeout_of_task.get()
    if limit is not None:
        limit[0].reschedule(None)


def restart_async() -> None:
    """``restart`` for an ``async def`` item, on its event loop."""
    limit = timeout_of_task.get()
    if limit is not None:
        import asyncio

        timeout, seconds = limit
        timeout.reschedule(asyncio.get_running_loop().time() + seconds)
