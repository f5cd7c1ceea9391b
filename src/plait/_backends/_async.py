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
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from .._async_call import DEFAULT_ASYNC_WORKERS, run_item
from .._errors import Cancelled, CancelReason, PoolClosed
from .._plan import Plan
from .._task import EVENT_LOOP, THIS_PROCESS, Job, Outcome, Task
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
        self._running: set[asyncio.Task[None]] = set()
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
        if not task.start():
            return
        running = asyncio.ensure_future(self._run(task))
        self._running.add(running)
        running.add_done_callback(self._done)
        if task.token is not None:
            loop = self._loop
            assert loop is not None
            task.token.on_cancel(lambda: loop.call_soon_threadsafe(running.cancel))

    def _done(self, running: asyncio.Task[None]) -> None:
        self._running.discard(running)
        if self._closed and not self._running and self._idle is not None:
            self._idle.set()

    async def _run(self, task: Task) -> None:
        started = time.perf_counter()
        tally = [0]  # the retries of its items
        if self._init_error is not None:
            results: list[Any] = [self._init_error] * len(task.items)
        else:
            one = self._one
            try:
                results = await asyncio.gather(
                    *(one(task, item, tally) for item in task.items), return_exceptions=True
                )
            except asyncio.CancelledError:  # the owner cancelled it: every item says so
                results = [_cancelled(task) for _ in task.items]
        errors = {
            i: _cancelled(task) if isinstance(r, asyncio.CancelledError) else r
            for i, r in enumerate(results)
            if isinstance(r, BaseException)
        }
        values = [None if i in errors else r for i, r in enumerate(results)]
        outcome = Outcome(values, errors, time.perf_counter() - started, began=started)
        outcome.where = (THIS_PROCESS, EVENT_LOOP)
        outcome.retries = tally[0]
        task.finish(task, outcome)

    async def _one(self, task: Task, item: Any, tally: list[int]) -> Any:
        return await run_item(task.job, item, task.timeout, self._semaphore, tally)

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
        loop.call_soon_threadsafe(idle.set)
        if wait and thread is not threading.current_thread():
            thread.join()

    def started(self) -> bool:
        return self._thread is not None

    def blocking(self) -> AbstractContextManager[object]:
        return nullcontext()  # its workers are not threads of this process

    def terminate(self) -> None:
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is None:
            return
        loop = self._loop
        assert loop is not None

        def cancel_all() -> None:
            for running in list(self._running):
                running.cancel()
            assert self._idle is not None
            self._idle.set()

        loop.call_soon_threadsafe(cancel_all)
        if thread is not threading.current_thread():
            thread.join()


def _cancelled(task: Task) -> Cancelled:
    """What a coroutine cancelled through its task's token ends with: why, from the token."""
    return Cancelled(task.token.reason if task.token is not None else CancelReason.CANCELLED)
