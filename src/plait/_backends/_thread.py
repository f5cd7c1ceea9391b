"""Thread backend: a fixed set of threads taking whole batches from one queue.

No Future and no queue round trip per item: a batch of tiny tasks costs one ``SimpleQueue``
put/get and one callback, and the items run inside ``execute``'s C-level loop.
"""

from __future__ import annotations

import threading
from queue import Empty, SimpleQueue

from .._errors import PoolClosed
from .._task import Job, Task, execute


class ThreadBackend:
    name = "thread"

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._queue: SimpleQueue[Task | None] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, task: Task) -> None:
        with self._lock:
            if self._closed:
                raise PoolClosed("cannot submit work: the pool is shut down")
            if not self._threads:  # started on first use: an idle pool costs nothing
                self._start_threads()
            self._queue.put(task)

    def _start_threads(self) -> None:
        for i in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"plait-thread-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _work(self) -> None:
        while (task := self._queue.get()) is not None:
            if task.start():
                task.finish(task, execute(task.job.fn, task.job.kind, task.items))

    def release(self, job: Job) -> None:
        pass  # threads share the caller's memory: nothing to forget

    def shutdown(self, *, wait: bool, cancel_pending: bool) -> None:
        with self._lock:
            first_call = not self._closed
            self._closed = True
        if cancel_pending:
            self._drop_pending()
        if first_call:
            for _ in self._threads:
                self._queue.put(None)  # after the pending tasks: they still run
        if wait:
            for thread in self._threads:
                thread.join()

    def terminate(self) -> None:
        # A thread cannot be killed; it ends after its current batch.
        self.shutdown(wait=True, cancel_pending=True)

    def _drop_pending(self) -> None:
        sentinels = 0
        while True:
            try:
                task = self._queue.get_nowait()
            except Empty:
                break
            if task is None:
                sentinels += 1
            else:
                task.discard()
        for _ in range(sentinels):
            self._queue.put(None)
