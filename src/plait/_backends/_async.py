"""Async backend: ``async def`` functions on one event-loop thread, with bounded concurrency.

A batch runs its items concurrently (``asyncio.gather``), each behind a semaphore of
``workers`` permits, so at most that many coroutines run at once across all batches. A task's
cancel token cancels its coroutines; each item runs as ``_async_call.run_item`` says (its time
limit, its retries).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext, suppress
from functools import partial
from typing import Any

from .._async_call import DEFAULT_ASYNC_WORKERS, Ended, run_item
from .._errors import Cancelled, CancelReason, PoolClosed
from .._plan import Plan
from .._task import EVENT_LOOP, THIS_PROCESS, Job, Outcome, Task
from .._waits import attentive, joined
from .._worker_spec import Workers, start_worker
from ._base import Unprobed

ASYNC_BATCH = 32  # items per batch: they run concurrently, so time says nothing about size


class AsyncBackend(Unprobed):
    name = "async"
    batch_limit: int | None = ASYNC_BATCH

    def __init__(self, spec: Workers) -> None:
        self.spec = spec
        self.workers = spec.count or DEFAULT_ASYNC_WORKERS
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._running: dict[asyncio.Task[None], _Batch] = {}
        self._closed = False
        self._idle: asyncio.Event | None = None
        self._init_error: BaseException | None = None

    def submit(self, task: Task) -> None:
        with self._lock:
            if self._closed:
                raise PoolClosed("cannot submit work: the pool is shut down")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="plait-event-loop", daemon=True
                )
                self._thread.start()
        self._ready.wait()
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._start, task)

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._init_error = start_worker(self.spec)
        self._semaphore = asyncio.Semaphore(self.workers)
        self._idle = asyncio.Event()
        self._ready.set()
        try:
            loop.run_until_complete(self._until_closed())
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _until_closed(self) -> None:
        assert self._idle is not None
        while True:
            await self._idle.wait()
            self._idle.clear()
            if self._closed and not self._running:
                return

    def _start(self, task: Task) -> None:  # on the loop
        batch = _Batch(task, self._semaphore)
        running = asyncio.ensure_future(self._run(batch))
        self._running[running] = batch
        running.add_done_callback(self._done)
        if task.token is not None:
            loop = self._loop
            assert loop is not None
            task.token.on_cancel(lambda: _soon(loop, running.cancel))

    def _done(self, running: asyncio.Task[None]) -> None:
        self._running.pop(running, None)
        if self._closed and not self._running and self._idle is not None:
            self._idle.set()

    def _drop_pending(self) -> None:  # on the loop
        """A shutdown's ``cancel_pending``: the batches none of whose items got a permit yet
        are dropped, as a thread pool drops those still queued."""
        for running, batch in list(self._running.items()):
            if batch.began is None:
                batch.began = False
                running.cancel()
                batch.task.discard(batch.task)

    async def _run(self, batch: _Batch) -> None:
        task = batch.task
        started = time.perf_counter()
        tally = [0]  # the retries of its items
        if self._init_error is not None:
            results: list[Any] = [self._init_error] * len(task.items)
        else:
            try:
                results = await asyncio.gather(
                    *(run_item(task.job, item, task.timeout, batch, tally) for item in task.items),
                    return_exceptions=True,
                )
            except asyncio.CancelledError:  # the owner cancelled it: every item says so
                results = [_cancelled(task) for _ in task.items]
        if batch.began is None:  # (no item got a permit: asked now, as a thread pool would)
            batch.began = task.start()
        if not batch.began:  # its owner gave up on it, or a shutdown dropped it
            return
        errors = {i: e for i, r in enumerate(results) if (e := _error(r, task)) is not None}
        values = [None if i in errors else r for i, r in enumerate(results)]
        outcome = Outcome(values, errors, time.perf_counter() - started, began=started)
        outcome.where = (THIS_PROCESS, EVENT_LOOP)
        outcome.retries = tally[0]
        task.finish(task, outcome)

    def plan(self, job: Job) -> Plan | None:
        return None  # where its work runs was chosen by the caller

    def release(self, job: Job) -> None:
        pass

    def shutdown(self, *, wait: bool, cancel_pending: bool) -> None:
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is None:
            return
        loop = self._loop
        idle = self._idle
        assert loop is not None
        assert idle is not None
        if cancel_pending:
            _soon(loop, self._drop_pending)
        _soon(loop, idle.set)
        if wait and thread is not threading.current_thread():
            attentive(partial(joined, thread), None)  # (a Ctrl-C meanwhile: seen in time)

    def started(self) -> bool:
        return self._thread is not None

    def blocking(self) -> AbstractContextManager[object]:
        return nullcontext()  # its workers are not threads of this process

    def terminate(self, *, grace: bool = True) -> None:
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is None:
            return
        loop = self._loop
        assert loop is not None

        def cancel_all() -> None:
            self._drop_pending()  # (never started: dropped, as on a thread pool)
            for running, batch in list(self._running.items()):
                if batch.task.token is not None:  # (its items say why: terminated)
                    batch.task.token.cancel(CancelReason.TERMINATED)
                running.cancel()
            assert self._idle is not None
            self._idle.set()

        _soon(loop, cancel_all)
        if thread is not threading.current_thread():
            thread.join()


def _soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], object]) -> None:
    """``callback`` on the loop, from any thread; nothing once the loop is closed: a shutdown
    ended it, and with it everything that ran there."""
    with suppress(RuntimeError):
        loop.call_soon_threadsafe(callback)


def _error(result: Any, task: Task) -> BaseException | None:
    """The error an item's result from ``gather`` stands for, if it stands for one."""
    if isinstance(result, asyncio.CancelledError):
        return _cancelled(task)
    if isinstance(result, Ended):
        return result.error
    return result if isinstance(result, BaseException) else None


def _cancelled(task: Task) -> Cancelled:
    """What a coroutine cancelled through its task's token ends with: why, from the token."""
    return Cancelled(task.token.reason if task.token is not None else CancelReason.CANCELLED)


class _NotBegun(asyncio.CancelledError):
    """An item's permit came, but its batch is not to run (see ``_Batch``)."""


class _Batch:
    """A task on the loop, and the permit its items take to run. It begins (``task.start()``,
    which marks a ``Pool.submit`` future running) when its first item gets one of the
    backend's permits, not before: until then it is pending, and can still be cancelled, or
    dropped by a shutdown, as on a thread pool."""

    __slots__ = ("began", "semaphore", "task")

    def __init__(self, task: Task, semaphore: asyncio.Semaphore) -> None:
        self.task = task
        self.semaphore = semaphore
        self.began: bool | None = None  # None: not yet asked

    async def __aenter__(self) -> None:
        await self.semaphore.acquire()
        if self.began is None:
            self.began = self.task.start()
        if not self.began:
            self.semaphore.release()
            raise _NotBegun

    async def __aexit__(self, *exc_info: object) -> None:
        self.semaphore.release()
