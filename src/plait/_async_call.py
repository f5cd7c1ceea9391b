"""One item of an ``async def`` job, on the running event loop: its time limit, its retries.

A leaf shared by the async backend (which runs batches on a loop of its own) and by
``plait.amap`` (which runs items on the caller's loop). A per-item time limit is
``asyncio.timeout``, so an item that overruns really stops.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from typing import Any

from ._errors import TaskTimeout
from ._item_clock import timeout_of_task
from ._task import Job, call, note_attempts

DEFAULT_ASYNC_WORKERS = 1000  # coroutines are cheap; sockets and servers are the real limit


class Ended:
    """An item's Ctrl-C or SystemExit, held as its task's result (see ``run_item``)."""

    __slots__ = ("error",)

    def __init__(self, error: KeyboardInterrupt | SystemExit) -> None:
        self.error = error


async def run_item(
    job: Job,
    item: Any,
    timeout: float | None,
    limit: AbstractAsyncContextManager[Any] | None = None,
    tally: list[int] | None = None,
) -> Any:
    """Await ``job``'s function on ``item`` within ``limit``'s permits, retried as the job's
    retry policy says (each retry counted in ``tally[0]``, for a trace); raises the last
    error, but for a Ctrl-C or SystemExit, returned as ``Ended``: asyncio hands those, from a
    task, to the event loop at once. On the async backend's loop that ended its thread, and
    the map waited for good; under ``plait.amap`` it ended ``asyncio.run`` beneath the
    consumer (a CancelledError in its frame, before the results that came first). Held, each
    is raised in the consumer's frame in its item's place, as an item's on a pool is."""
    attempt = 1
    while True:
        try:
            if limit is None:
                return await _attempt(job, item, timeout)
            async with limit:
                return await _attempt(job, item, timeout)
        except asyncio.CancelledError:
            raise
        except (KeyboardInterrupt, SystemExit) as exc:
            note_attempts(exc, attempt)
            return Ended(exc)
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
    # (Not ``asyncio.wait_for``: on 3.11 it runs the item as a task of its own, whose Ctrl-C
    # asyncio hands to the loop; and it took the item's own TimeoutError for its time limit.)
    limit = asyncio.timeout(timeout)
    try:
        async with limit:
            clock = timeout_of_task.set((limit, timeout))  # (a rate= slot's wait restarts it)
            try:
                return await coroutine
            finally:
                timeout_of_task.reset(clock)
    except TimeoutError:
        if not limit.expired():
            raise  # the item's own
        raise TaskTimeout(
            f"the item ran longer than task_timeout={timeout}s; it was cancelled",
            timeout=timeout,
        ) from None
