"""``async with plait.TaskGroup()``: the same group, waited for without blocking the loop.

Plain functions still run on the group's pool. ``async def`` functions run as asyncio tasks on
the caller's own loop (so they may use what lives on it: sessions, connections, locks), each
tied to its handle: the group's cancellation cancels them, their outcome finishes the handle.
Waiting (``await handle``, leaving the block) registers a one-shot waker with the group, called
from whichever thread changed a handle, that sets an asyncio event through
``call_soon_threadsafe``.

Kept apart from ``_taskgroup`` so that a program that never uses ``async with`` never imports
asyncio for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from contextlib import suppress
from functools import partial
from typing import TYPE_CHECKING, Any

from . import _trace
from ._errors import Cancelled, CancelReason
from ._task import Outcome, task_error

if TYPE_CHECKING:
    from ._taskgroup import TaskGroup, TaskHandle


def running_loop() -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            "plait.TaskGroup: `async with` needs a running event loop; outside async code use "
            "`with plait.TaskGroup() as tg:`"
        ) from None


def start_on_loop(
    group: TaskGroup, handle: TaskHandle[Any], coroutine: Coroutine[Any, Any, Any]
) -> None:
    """Run ``coroutine`` as an asyncio task on the group's loop, finishing ``handle``."""
    loop: asyncio.AbstractEventLoop = group._loop
    task = loop.create_task(_run(handle, coroutine))
    group._loop_tasks.add(task)

    def ended(done: asyncio.Task[None]) -> None:
        group._loop_tasks.discard(done)
        handle._discard(None)  # a task cancelled before its first step never ran _run

    task.add_done_callback(ended)

    def cancel() -> None:  # from any thread; the loop may be gone by then (nothing to cancel)
        with suppress(RuntimeError):
            loop.call_soon_threadsafe(task.cancel)

    handle._token.on_cancel(cancel)


async def _run(handle: TaskHandle[Any], coroutine: Coroutine[Any, Any, Any]) -> None:
    if not handle._start():
        coroutine.close()  # never awaited: no "coroutine was never awaited" warning
        return
    started = time.perf_counter() if _trace.active else None
    try:
        outcome = Outcome([await coroutine])
    except asyncio.CancelledError:
        if not handle._token.cancelled:  # it cancelled itself: the handle is cancelled too
            handle._token.cancel(CancelReason.CANCELLED)
        outcome = Outcome([None], {0: Cancelled(handle._token.reason)})
    except BaseException as exc:  # the task's own failure, reported through its handle
        outcome = Outcome([None], {0: task_error(exc)})
    if started is not None:
        _trace.record_coroutine(coroutine, 0, started, outcome, call=True)
    handle._finish(None, outcome)


async def until(
    group: TaskGroup, condition: Callable[[], bool], timeout: float | None = None
) -> bool:
    """Wait on the loop until ``condition()`` (read under the group's lock) holds; False if
    ``timeout`` seconds passed first."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        woken = asyncio.Event()
        with group._cond:
            if condition():
                return True
            group._wakers.append(partial(_wake, loop, woken))
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return False
        with suppress(TimeoutError):
            await asyncio.wait_for(woken.wait(), remaining)


def _wake(loop: asyncio.AbstractEventLoop, woken: asyncio.Event) -> None:
    with suppress(RuntimeError):  # that wait is over and its loop closed: nobody to wake
        loop.call_soon_threadsafe(woken.set)


async def exit_async(group: TaskGroup, exc: BaseException | None) -> None:
    """``__aexit__``: ``__exit__``'s rules, awaited."""
    group._exited = True
    try:
        if exc is not None and group._interrupted_by(exc):  # cancelled or Ctrl-C: stop now
            group._stop_now(exc)
            return
        if exc is not None:  # the block itself failed: its tasks have no reason to go on
            group.cancel(CancelReason.BLOCK_FAILED)
        await _wait_all(group)
    except BaseException as interrupt:  # cancelled while waiting: stop everything now
        group._stop_now(interrupt)
        raise
    finally:
        await _settle(group)
    group._close(exc)


async def _wait_all(group: TaskGroup) -> None:
    def all_done() -> bool:
        return all(handle.done() for handle in group._handles)

    while True:
        remaining = None
        if group._deadline is not None and not group._timed_out:
            remaining = max(0.0, group._deadline - time.monotonic())
        if await until(group, all_done, remaining):
            return
        group._timed_out = True
        group.cancel(CancelReason.DEADLINE)


async def _settle(group: TaskGroup) -> None:
    """Await the group's tasks on this loop, cancelled or not, so none outlives the block."""
    tasks = list(group._loop_tasks)
    for task in tasks:
        if not task.done():
            task.cancel()
    if tasks:
        # Shielded: a second cancellation of the caller must not leave them running.
        await asyncio.shield(asyncio.gather(*tasks, return_exceptions=True))
