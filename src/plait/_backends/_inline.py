"""Inline: a batch runs at once, in the thread that submits it, the consumer's.

For work so small per item that handing it to another thread or process costs more than the
work itself (``backend="auto"`` decides so, see ``_plan``): a map then runs in the thread that
iterates over its results, batch by batch, as the builtin ``map`` would. Not a backend a user
names: it cannot stop an overrunning item, so ``auto`` never picks it for a map with a
``task_timeout``.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from .._errors import PoolClosed
from .._plan import Plan
from .._standin import standing_in
from .._task import THIS_PROCESS, Job, Task, execute, failed
from .._worker_spec import Workers, initialize
from ._base import Unprobed


class InlineBackend(Unprobed):
    name = "inline"
    batch_limit: int | None = None

    def __init__(self, spec: Workers) -> None:
        self.spec = spec
        self.workers = 1
        self._closed = False
        # Each thread that runs batches here is a worker of its own: the consumer's, the one
        # that reads the map's results. Its worker_state(), set up in that thread with the
        # initializer on its first batch (a connection made there is used there only), is in
        # place only while a batch runs.
        self._local = threading.local()

    def submit(self, task: Task) -> None:
        """Run the task now, in this thread (the consumer's). An item's Ctrl-C or SystemExit
        is its error like any other, raised where the consumer takes its result
        (``MapWindow.with_errors``), after the results ahead of it: raised here, it would
        lose those.
        """
        if self._closed:
            raise PoolClosed("cannot submit work: the pool is shut down")
        if not task.start():
            return
        job = task.job
        state = self.worker_state()
        init_error: BaseException | None = self._local.init_error
        with standing_in(state, task.token):
            outcome = (
                execute(job.fn, job.kind, task.items, job.retry, measure=job.measure)
                if init_error is None
                else failed(len(task.items), init_error, ran=False)
            )
        outcome.where = (THIS_PROCESS, f"inline [{threading.get_native_id()}]")  # the caller's
        task.finish(task, outcome)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def ready(self) -> bool:
        """Whether this thread's worker is set up (its initializer ran, and did not fail):
        until then a batch goes through ``submit``, which sets it up and reports a failure."""
        return getattr(self._local, "state", None) is not None and self._local.init_error is None

    def worker_state(self) -> dict[str, Any]:
        """This thread's worker's ``plait.worker_state()``: set up, with the initializer, on
        its first call in this thread, and only then in place for others to see."""
        state: dict[str, Any] | None = getattr(self._local, "state", None)
        if state is None:
            state = {}
            with standing_in(state, None):
                self._local.init_error = initialize(self.spec)
            self._local.state = state
        return state

    def release(self, job: Job) -> None:
        pass

    def plan(self, job: Job) -> Plan | None:
        return None

    def runs_inline(self, job: Job) -> InlineBackend | None:
        return self

    def shutdown(self, *, wait: bool, cancel_pending: bool) -> None:
        self._closed = True

    def terminate(self, *, grace: bool = True) -> None:
        self._closed = True

    def started(self) -> bool:
        return False

    def blocking(self) -> AbstractContextManager[object]:
        return nullcontext()
