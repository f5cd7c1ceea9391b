"""The worker processes of one process backend, as its dispatcher thread keeps them.

Started as the work needs them (a parked warm one first, see ``_warm``), each watched through
the dispatcher's selector (its socket, and its exit descriptor where the system has one);
recycled once it ran its quota of items; replaced when it dies, unless workers keep dying
before they are ready (then none is started any more: ``unstartable`` is the error every task
fails with); and, as the backend ends, kept warm for the next pool or ended. What runs on the
workers, and what a lost one costs its tasks, is the dispatcher's.
"""

from __future__ import annotations

import selectors
import time
from collections.abc import Callable
from functools import partial

from ..._errors import WorkerCrashed
from ..._worker_spec import Workers
from . import _warm
from ._codec import encode_init, encode_surroundings, might_be_ctrl_c
from ._handle import EARLY_DEATHS, WorkerHandle, early_death_message, stop_all


class Crew:
    def __init__(self, spec: Workers, start_method: str) -> None:
        self.spec = spec
        self.start_method = start_method
        self.reusable = _warm.reusable(spec)
        self.workers: list[WorkerHandle] = []
        self.selector: selectors.BaseSelector  # made when the dispatcher starts (``open``)
        self._init: bytes | None = None  # the INIT payload, made once
        self._surroundings: bytes | None = None  # the RESET payload, made once if needed
        self._early_deaths = 0  # workers that ended before READY since the last READY
        # The error each task gets once workers are no longer started: they keep dying before
        # READY (see EARLY_DEATHS), or the initializer cannot be sent to them.
        self.unstartable: BaseException | Callable[[], BaseException] | None = None

    def open(self) -> None:
        self.selector = selectors.DefaultSelector()

    def grow(self, limit: int, waiting: Callable[[], int]) -> None:
        """Start workers as the work needs them, up to ``limit``: one for each task
        ``waiting()`` counts beyond what the workers without a task will take (one still starting
        counts: it takes a task once ready). Started all up front, ``workers=300`` forked 300
        processes for a map of 5 items (0.8 s before its first result), and 5,000 hung the
        call."""
        room = limit - len(self.workers)
        if room <= 0 or self.unstartable is not None:
            return
        free = sum(1 for worker in self.workers if not worker.tasks and not worker.retiring)
        needed = min(room, waiting() - free)
        if needed <= 0:
            return
        # (The program's surroundings, which parked workers must match, are read once a round.)
        key = self._warm_key() if _warm.any_parked() else None
        for _ in range(needed):
            if not self.start(len(self.workers), key):
                return

    def start(self, index: int, warm_key: tuple[object, ...] | None = None) -> bool:
        """Start a worker (or take a parked one); False if none can be started."""
        if self.reusable and _warm.any_parked() and self.take_parked(warm_key, index):
            return True
        if (init := self._init_payload()) is None:
            return False  # none can be started: the dispatcher fails the tasks
        self._add(WorkerHandle(index, self.start_method, init, self.spec.max_tasks))
        return True

    def take_parked(self, key: tuple[object, ...] | None, index: int | None = None) -> bool:
        """Take a parked worker (``_warm``) as worker ``index`` (the next one by default)."""
        if (init := self._init_payload()) is None:
            return False
        worker = _warm.take(key or self._warm_key())
        if worker is None:
            return False
        if self._surroundings is None:  # made once, for every worker this pool takes
            self._surroundings = encode_surroundings()
        worker.reuse(
            len(self.workers) if index is None else index,
            init,
            self.spec.max_tasks,
            self._surroundings,
        )
        self._add(worker)
        return True

    def _init_payload(self) -> bytes | None:
        """What every worker gets first: sys.path and the initializer, pickled once; None if
        the initializer or its initargs would not pickle (that error, noted, is then what
        each task fails with: the user's to fix, not a failure of the dispatcher)."""
        if self._init is None and self.unstartable is None:
            try:
                self._init = encode_init(self.spec)
            except BaseException as exc:  # (whatever a __reduce__ of the user's raised)
                if might_be_ctrl_c(exc):
                    raise
                self.unstartable = exc
        return self._init

    def _add(self, worker: WorkerHandle) -> None:
        self.workers.append(worker)
        self.selector.register(worker.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, worker)
        if worker.exit_fd is not None:
            self.selector.register(worker.exit_fd, selectors.EVENT_READ, worker)

    def drop(self, worker: WorkerHandle) -> None:
        """Stop watching ``worker`` (before its socket and exit descriptor close)."""
        self.selector.unregister(worker.sock)
        if worker.exit_fd is not None:
            self.selector.unregister(worker.exit_fd)
        self.workers.remove(worker)

    def _warm_key(self) -> tuple[object, ...]:
        return _warm.surroundings(self.start_method)

    def ready(self, worker: WorkerHandle) -> None:
        """The worker said READY: it runs its tasks from now on."""
        worker.ready = True
        worker.unconfirmed = False
        self._early_deaths = 0

    def write_now(self, worker: WorkerHandle) -> None:
        """Write what the worker's socket takes at once (a batch of small items: all of it),
        and wait for it to become writable only for the rest: no loop round and no two
        ``epoll_ctl`` calls per batch. A worker found gone is lost at the next poll."""
        if not worker.writer.flush(worker.sock) or worker.writer:
            self.want_write(worker)

    def want_write(self, worker: WorkerHandle) -> None:
        self.selector.modify(worker.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, worker)

    def recycle(self, worker: WorkerHandle) -> None:
        """Replace a worker that ran its quota of items: EOF ends it, a fresh one starts."""
        self.drop(worker)
        worker.sock.close()
        worker.reap(time.monotonic() + 5)
        self.start(worker.index)

    def replace(self, worker: WorkerHandle, returncode: int) -> None:
        """Start a worker in place of one that ended, unless workers keep ending before they
        are ready (``EARLY_DEATHS``): then the place stays empty, and once none is left the
        dispatcher fails the tasks (``unstartable``)."""
        if worker.ready or self.spec.initializer is None:
            # (Without an initializer, a worker that ended before it was ready was ended from
            # outside, most likely: a killer of processes, the OOM killer. Counted, a few such
            # kills of newly started workers failed every task of a healthy pool.)
            self.start(worker.index)
            return
        self._early_deaths += 1
        if self._early_deaths < EARLY_DEATHS and self.unstartable is None:
            self.start(worker.index)
            return
        if self.unstartable is None:
            message = early_death_message(worker.proc.pid, returncode, self.spec.initializer)
            self.unstartable = partial(WorkerCrashed, message, exitcode=returncode)

    def stop(self, *, kill: bool) -> list[WorkerHandle]:
        """End every worker: idle ones are kept warm for the next pool when they can be (not
        after a ``kill``), the rest end (see ``stop_all``). Returns those that ended."""
        workers, self.workers = self.workers, []
        if not kill and self.reusable and workers:
            key = _warm.surroundings(self.start_method)
            workers = [w for w in workers if not _warm.park(w, key)]
        stop_all(workers, kill=kill)
        return workers
