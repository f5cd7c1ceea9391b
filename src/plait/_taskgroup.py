"""Structured concurrency for plain functions: ``TaskGroup`` and ``run``.

    with plait.TaskGroup() as tg:          # nothing started here outlives the block
        a = tg.submit(fetch, url_a)        # a TaskHandle
        b = tg.submit(fetch, url_b)
    a.result(), b.result()

When a task fails, the group is cancelled: tasks not yet started never start, running thread
tasks are told to stop (``plait.cancelled()`` turns True, ``plait.sleep`` and
``plait.checkpoint()`` raise ``plait.Cancelled``), running process tasks are terminated. Leaving
the block waits for every task, then raises every failure together as an ExceptionGroup.
Cancellation is cooperative on threads: a thread task that never looks keeps the block waiting.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Awaitable, Callable, Generator
from functools import partial
from types import TracebackType
from typing import Any, Generic, ParamSpec, TypeVar, overload

from . import _validate as check
from ._cancel import CancelToken, current_token
from ._engine import Engine
from ._errors import Cancelled, CancelReason
from ._task import Outcome, Task
from ._waits import attentive, cut
from ._worker_spec import Workers, as_workers

R = TypeVar("R")
P = ParamSpec("P")

PENDING, RUNNING, FINISHED, CANCELLED = "pending", "running", "finished", "cancelled"
# Backends whose tasks run in other processes: a running one cannot see its token.
_IN_OTHER_PROCESSES = frozenset({"process", "dask", "ray"})
UNBOUNDED = sys.maxsize  # a TaskGroup on threads starts a thread for every task that waits


class TaskHandle(Generic[R]):
    """A task started with ``TaskGroup.submit``."""

    __slots__ = ("_error", "_group", "_state", "_tellable", "_token", "_value")

    def __init__(self, group: TaskGroup, token: CancelToken) -> None:
        self._group = group
        self._token = token
        self._tellable = True  # running, it sees its token (not in another process)
        self._state = PENDING
        self._value: Any = None
        self._error: BaseException | None = None

    def __repr__(self) -> str:
        return f"<plait.TaskHandle {self._state}>"

    def done(self) -> bool:
        """True once the task finished, failed or was cancelled."""
        return self._state in (FINISHED, CANCELLED)

    def cancelled(self) -> bool:
        return self._state == CANCELLED

    def cancel(self) -> bool:
        """Cancel this task alone: if it has not started it never will; if it runs on a thread
        or an event loop it is told to stop. False if it was already done, or if it runs in
        another process (a process or a cluster worker), which cannot be told (as
        ``Future.cancel()`` is False for a call that runs; ``group.cancel()`` ends them)."""
        with self._group._cond:
            if self.done() or (self._state == RUNNING and not self._tellable):
                return False
            if self._state == PENDING:
                self._state = CANCELLED
                self._group._changed()
        self._token.cancel(CancelReason.CANCELLED)
        return True

    def result(self, timeout: float | None = None) -> R:
        """The task's return value (waiting up to ``timeout`` seconds); raises its exception,
        ``plait.Cancelled`` if it was cancelled, ``TimeoutError`` if it is not done in time."""
        self._group._wait_for(self, timeout)
        if self._state == CANCELLED:
            raise self._group._cancelled(self)
        if self._error is not None:
            raise self._error
        value: R = self._value
        return value

    def __await__(self) -> Generator[Any, None, R]:
        """``await handle``: its result, without blocking the event loop (in ``async with``)."""
        from ._taskgroup_async import until

        yield from until(self._group, self.done).__await__()
        return self.result()

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._group._wait_for(self, timeout)
        if self._state == CANCELLED:
            raise self._group._cancelled(self)
        return self._error

    # -- called by the backend -------------------------------------------------------------

    def _start(self) -> bool:
        with self._group._cond:
            if self._state == PENDING and not self._token.cancelled:
                self._state = RUNNING
                return True
            self._state = CANCELLED
            self._group._changed()
            return False

    def _finish(self, _task: Task | None, outcome: Outcome) -> None:
        error = outcome.errors.get(0)
        with self._group._cond:
            if error is None:
                self._value, self._state = outcome.values[0], FINISHED
            elif isinstance(error, Cancelled) and self._token.cancelled:
                self._state = CANCELLED  # it stopped because it was asked to
            else:
                self._error, self._state = error, FINISHED
            self._group._changed()
        if self._state == FINISHED and error is not None:
            self._group._fail(error)

    def _discard(self, _task: Task | None) -> None:
        with self._group._cond:
            if not self.done():
                self._state = CANCELLED
                self._group._changed()


class TaskGroup:
    """Run functions concurrently; none outlives the ``with`` block, and failures cancel the rest.

    ``workers``: how many tasks run at once (threads: no limit by default, a thread per running
    task; processes: one per core). ``timeout``: seconds for the whole group, counted from
    entering the block; past it, the tasks are cancelled and leaving the block raises
    TimeoutError. A group made inside a task of another group is cancelled with it.
    """

    def __init__(
        self,
        *,
        workers: int | Workers | None = None,
        backend: str = "thread",
        timeout: float | None = None,
    ) -> None:
        check.check_backend(backend, "plait.TaskGroup")
        check.check_workers(workers, "plait.TaskGroup")
        check.check_timeout(timeout, "plait.TaskGroup")
        if workers is None and backend == "thread":
            workers = UNBOUNDED
        spec = as_workers(workers)
        spec.check_backend(backend, "plait.TaskGroup")
        self._engine = Engine(backend, spec)
        self._async_engine: Engine | None = None  # for async def tasks, made on first use
        self._timeout = timeout
        self._deadline: float | None = None
        self._cond = threading.Condition(threading.Lock())
        self._handles: list[TaskHandle[Any]] = []
        self._failures: list[BaseException] = []
        self._token = CancelToken(current_token())  # nested in the task that made us, if any
        self._entered = False
        self._exited = False
        self._timed_out = False
        self._told: Cancelled | None = None  # the last Cancelled of a task its handle cancelled
        self._wakers: list[Callable[[], object]] = []  # one-shot, under _cond: see _changed
        self._loop: Any = None  # the event loop of ``async with``: async def tasks run on it
        self._loop_tasks: set[Any] = set()  # their asyncio tasks

    def __enter__(self) -> TaskGroup:
        if self._entered:
            raise RuntimeError("a plait.TaskGroup can be entered only once")
        self._entered = True
        if self._timeout is not None:
            self._deadline = time.monotonic() + self._timeout
        return self

    async def __aenter__(self) -> TaskGroup:
        """``async with``: plain functions run on the group's pool as in ``with``, ``async def``
        functions as tasks on this event loop; leaving the block awaits them all."""
        from ._taskgroup_async import running_loop

        self.__enter__()
        self._loop = running_loop()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        from ._taskgroup_async import exit_async

        await exit_async(self, exc)

    @overload
    def submit(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle[R]: ...
    @overload
    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]: ...

    def submit(self, fn: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[Any]:
        """Start ``fn(*args, **kwargs)`` in the group; returns its handle at once. An ``async
        def`` function runs on the caller's event loop in ``async with``, and on an event loop
        thread of the group's in ``with``."""
        check.check_fn(fn, "TaskGroup.submit")
        if not self._entered or (self._exited and not self._in_a_task()):
            raise RuntimeError(
                "TaskGroup.submit: use it inside the group's `with` block, or in one of its tasks"
            )
        handle: TaskHandle[Any] = TaskHandle(self, CancelToken(self._token))
        self._handles.append(handle)  # list.append is atomic; _wait_all reads under _cond
        if self._loop is not None and check.is_async(fn):
            from ._taskgroup_async import start_on_loop

            start_on_loop(self, handle, fn(*args, **kwargs))
            return handle
        engine = self._engine_for(fn)
        handle._tellable = engine.backend.name not in _IN_OTHER_PROCESSES
        engine.submit_call(
            fn,
            args,
            kwargs,
            start=handle._start,
            finish=handle._finish,
            discard=handle._discard,
            token=handle._token,
        )
        return handle

    def _in_a_task(self) -> bool:
        """Whether the caller is one of the group's tasks (or runs inside one): the group waits
        for it, so what it submits is waited for too, even once the block's body has ended.
        (By its token: a task's is a child of the group's.)"""
        token = current_token()
        while token is not None:
            if token is self._token:
                return True
            token = token.parent
        return False

    def _engine_for(self, fn: Callable[..., Any]) -> Engine:
        if not check.is_async(fn):
            return self._engine
        if self._async_engine is None:
            self._async_engine = Engine("async", Workers())
        return self._async_engine

    def _engines(self) -> list[Engine]:
        if self._async_engine is None:
            return [self._engine]
        return [self._engine, self._async_engine]

    def cancel(self, reason: CancelReason = CancelReason.CANCELLED) -> None:
        """Cancel every task of the group (and of groups nested in them)."""
        self._token.cancel(reason)  # async tasks are cancelled through their tokens too
        if self._engine.backend.name == "process":
            self._engine.terminate()  # a process cannot be asked: running tasks are ended

    def _terminate(self, reason: CancelReason) -> None:
        self._token.cancel(reason)
        for engine in self._engines():
            engine.terminate()

    def _cancelled(self, handle: TaskHandle[Any]) -> Cancelled:
        """What ``handle.result()`` raises for a cancelled task. One that ``handle.cancel()``
        cancelled is remembered: the block that it leaves failed, as with any error, and its
        tasks are waited for; it was not interrupted. (Taken for an interruption, it ended
        every task at once: a sibling that never looks ran on past the block, and its handle
        said cancelled.)"""
        error = Cancelled(handle._token.reason)
        if handle._token.cancelled_itself:
            self._told = error
        return error

    def _stop_now(self, interrupt: BaseException) -> None:
        """The block was left by ``interrupt`` (Ctrl-C, a cancellation): end every task now."""
        self._terminate(_reason_for(interrupt))

    def _changed(self) -> None:
        """A handle changed state (called under ``_cond``): wake sync and async waiters."""
        self._cond.notify_all()
        wakers, self._wakers = self._wakers, []
        for wake in wakers:
            wake()

    def _fail(self, error: BaseException) -> None:
        with self._cond:
            if any(error is failure for failure in self._failures):
                return  # a task that waited on a failed sibling raised its error: one failure
            self._failures.append(error)
            first = len(self._failures) == 1
        if first:
            self.cancel(CancelReason.SIBLING_FAILED)

    def _wait_for(self, handle: TaskHandle[Any], timeout: float | None) -> None:
        self._engine.owner.check("task group")  # (in a fork, nothing would end the wait)
        # A task of this group may wait on a sibling: its pool runs a thread more meanwhile.
        with self._engine.backend.blocking(), self._cond:
            if not attentive(partial(self._cond.wait_for, handle.done), timeout):
                raise TimeoutError("the task did not finish in time")

    def _wait_all(self) -> None:
        """Wait for every task; at the group's deadline cancel them, then wait for them to end."""
        with self._cond:
            while not all(h.done() for h in self._handles):
                if self._deadline is not None and not self._timed_out:
                    remaining = self._deadline - time.monotonic()
                    if remaining <= 0:
                        self._timed_out = True
                        self._cond.release()
                        try:
                            self.cancel(CancelReason.DEADLINE)
                        finally:
                            self._cond.acquire()
                        continue
                    self._cond.wait(cut(remaining))  # (the loop waits again)
                else:
                    self._cond.wait()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exited = True
        self._engine.owner.check("task group")  # (a fork: its tasks are the parent's)
        if exc is not None and self._interrupted_by(exc):  # Ctrl-C in the block: stop now
            self._stop_now(exc)
            return
        try:
            if exc is not None:  # the block itself failed: its tasks have no reason to go on
                self.cancel(CancelReason.BLOCK_FAILED)
            self._wait_all()
        except BaseException as interrupt:  # Ctrl-C while waiting: stop everything now
            self._stop_now(interrupt)
            raise
        self._close(exc)

    def _interrupted_by(self, exc: BaseException) -> bool:
        """Whether the block was left by an interruption (Ctrl-C, its task's cancellation),
        which ends every task now; not by an error, nor by a ``Cancelled`` of this group's
        own (``handle.result()`` of a task the group cancelled: its failures are the news), nor
        by one of a task cancelled by its handle (``_cancelled``)."""
        if isinstance(exc, Exception):
            return False
        if not isinstance(exc, Cancelled):
            return True
        return not (self._token.cancelled_itself or exc is self._told)

    def _close(self, exc: BaseException | None) -> None:
        """Every task is done: shut the pools down, raise what failed."""
        for engine in self._engines():
            engine.shutdown(wait=True)
        errors = list(self._failures)
        if self._timed_out:
            errors.append(TimeoutError(f"the task group did not finish within {self._timeout}s"))
        if exc is not None:
            if not errors:
                return  # the block's own exception propagates unchanged
            # (Unless it is a task's failure, which the block re-raised, ``handle.result()``,
            # or what the group's cancellation, for those failures, made of another task.)
            if all(exc is not error for error in errors) and not isinstance(exc, Cancelled):
                errors.insert(0, exc)
        if len(errors) == 1 and isinstance(errors[0], TimeoutError) and self._timed_out:
            raise errors[0]
        if errors:
            count = len(self._failures)
            raise BaseExceptionGroup(f"plait.TaskGroup: {count} task(s) failed", errors)


def _reason_for(interrupt: BaseException) -> CancelReason:
    asyncio = sys.modules.get("asyncio")  # loaded if the interrupt can be its CancelledError
    if asyncio is not None and isinstance(interrupt, asyncio.CancelledError):
        return CancelReason.CANCELLED  # the task awaiting ``async with`` was cancelled
    if isinstance(interrupt, KeyboardInterrupt):
        return CancelReason.INTERRUPTED
    if isinstance(interrupt, Cancelled):
        return interrupt.reason
    return CancelReason.BLOCK_FAILED
