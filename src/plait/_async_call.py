"""One item of an ``async def`` job, on the running event loop: its time limit, its retries.

A leaf shared by the async backend (which runs batches on a loop of its own) and by
``plait.amap`` (which runs items on the caller's loop). A per-item time limit is
``asyncio.wait_for``, so an item that overruns really stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from ._errors import TaskTimeout
from ._task import Job, call, note_attempts

DEFAULT_ASYNC_WORKERS = 1000  # coroutines are cheap; sockets and servers are the real limit

R = TypeVar("R")


class Ended:
    """An item's Ctrl-C or SystemExit, held as its task's result (see ``held``)."""

    __slots__ = ("error",)

    def __init__(self, error: KeyboardInterrupt | SystemExit) -> None:
        self.error = error


async def held(item: Awaitable[R]) -> R | Ended:
    """An item whose Ctrl-C or SystemExit stays with its task, as ``Ended``: asyncio hands
    those, from a task, to the event loop at once. On the async backend's loop that ended its
    thread, and the map waited for good; under ``plait.amap`` it ended ``asyncio.run`` beneath
    the consumer (a CancelledError in its frame, before the results that came first). Held,
    each is raised in the consumer's frame in its item's place, as an item's on a pool is."""
    try:
        return await item
    except (KeyboardInterrupt, SystemExit) as exc:
        return Ended(exc)


async def run_item(
    job: Job,
    item: Any,
    timeout: float | None,
    limit: AbstractAsyncContextManager[Any] | None = None,
    tally: list[int] | None = None,
) -> Any:
    """Await ``job``'s function on ``item`` within ``limit``'s permits, retried as the job's
    retry policy says (each retry counted in ``tally[0]``, for a trace); raises the last
    error."""
    attempt = 1
    while True:
        try:
            if limit is None:
                return await _attempt(job, item, timeout)
            async with limit:
                return await _attempt(job, item, timeout)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            retry = job.retry
            if retry is None or not retry.applies(exc, attempt):
                note_attempts(exc, attempt)
                raise
            await asyncio.sleep(retry.delay(attempt))
            attempt += 1
            if tally is not None:
                tally[0] += 1


async def _attempt(job: Job, item: Any, timeout: float | None) -> Any:
    coroutine = call(job.fn, job.kind, item)
    if timeout is None:
        return await coroutine
    try:
        return await asyncio.wait_for(coroutine, timeout)
    except TimeoutError:
        raise TaskTimeout(
            f"the item ran longer than task_timeout={timeout}s; it was cancelled",
            timeout=timeout,
        ) from None
