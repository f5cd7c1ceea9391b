"""Inline: a batch runs at once, in the thread that submits it.

For work so small per item that handing it to another thread or process costs more than the
work itself (``backend="auto"`` decides so, see ``_plan``): a map then runs in the thread that
iterates over its results, batch by batch, as the builtin ``map`` would. Not a backend a user
names: it cannot stop an overrunning item, so ``auto`` never picks it for a map with a
``task_timeout``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from .._cancel import set_current_token
from .._errors import PoolClosed
from .._plan import Plan
from .._task import Job, Task, execute


class InlineBackend:
    name = "inline"
    batch_limit: int | None = None

    def __init__(self) -> None:
        self.workers = 1
        self._closed = False

    def submit(self, task: Task) -> None:
        if self._closed:
            raise PoolClosed("cannot submit work: the pool is shut down")
        if not task.start():
            return
        job = task.job
        set_current_token(task.token)
        try:
            outcome = execute(job.fn, job.kind, task.items, job.retry, measure=job.measure)
        finally:
            set_current_token(None)
        for error in outcome.errors.values():
            # Ctrl-C (or SystemExit) in the caller's own thread is the caller's to handle, as
            # in any loop it runs: not an item's failure. (The map is closed on the way out.)
            if not isinstance(error, Exception):
                raise error
        task.finish(task, outcome)

    def release(self, job: Job) -> None:
        pass

    def plan(self, job: Job) -> Plan | None:
        return None

    def shutdown(self, *, wait: bool, cancel_pending: bool) -> None:
        self._closed = True

    def terminate(self) -> None:
        self._closed = True

    def started(self) -> bool:
        return False

    def blocking(self) -> AbstractContextManager[object]:
        return nullcontext()
