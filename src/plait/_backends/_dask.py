"""backend="dask": plait's batches as tasks on a Dask cluster (``pip install plait[dask]``).

Where the cluster comes from, in this order: ``Workers(address="tcp://host:8786")``, a
scheduler to connect to; the current ``distributed.Client`` (``distributed.default_client()``);
else a local cluster that this backend starts on its first batch (``_dask_local``: a scheduler
and a worker process per usable core, one thread each, no dashboard) and closes when it shuts
down.

Each batch is one Dask task, ``_remote.run_batch``, fed the function, the items and the result in
the process backend's encodings, so the answers are those of local processes. plait keeps its
own queue: at most ``TASKS_PER_WORKER`` batches per worker thread are on the cluster at once, so
``Pool.submit`` has the backpressure and the cancellable queue of the other backends, and a
map's window bounds what the cluster holds.

What Dask cannot do, and what plait does instead:

- stop a running task: an item with a ``task_timeout`` runs on a thread of its own on the worker,
  which answers TaskTimeout at the deadline; plait then restarts that worker through its nanny,
  which ends the abandoned item (other tasks on that worker are rescheduled by Dask);
- say which item of a batch killed its worker: a batch whose worker died (``KilledWorker``) runs
  again item by item (``process._rerun``), so that only the item that kills its worker again
  fails, with ``WorkerCrashed``. The cluster plait starts does not retry a task that lost its
  worker (``allowed-failures`` 0); an existing cluster retries as it is configured to first.
"""

from __future__ import annotations

import sys
import threading
import traceback
import weakref
from collections import deque
from contextlib import AbstractContextManager, nullcontext, suppress
from typing import Any

from .._cores import usable_cores
from .._errors import PlaitError, PoolClosed, WorkerCrashed
from .._plan import Plan
from .._task import Job, Outcome, Task, failed
from .._worker_spec import Workers
from ._base import terminated, track
from ._dask_local import LocalDaskCluster
from .process._codec import Sent, encode_function
from .process._rerun import run_again

TASKS_PER_WORKER = 2  # one running, one queued on its worker: no idle gap between batches
EXTRA = "pip install 'plait[dask]'"


def import_distributed() -> Any:
    """``distributed``, or an error that says how to install it."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(f"backend='dask' needs Dask's distributed scheduler: {EXTRA}") from exc
    return distributed


class DaskBackend:
    name = "dask"
    batch_limit: int | None = None

    def __init__(self, spec: Workers) -> None:
        self._distributed = import_distributed()
        self.spec = spec
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified when nothing is in flight
        self._connecting = threading.Lock()
        self._pending: deque[Task] = deque()  # not started yet
        self._requeued: deque[Task] = deque()  # started, to run again (their worker died)
        self._in_flight: dict[str, tuple[Any, Task, Sent]] = {}  # by Dask key
        self._sending = 0  # taken from _pending, not yet in _in_flight
        self._functions: weakref.WeakKeyDictionary[Job, bytes] = weakref.WeakKeyDictionary()
        self._closed = False
        self._client: Any = None
        self._cluster: LocalDaskCluster | None = None  # the one this backend started, if any
        self._owns_client = False
        self._sent = False  # a batch went to the cluster
        if spec.address is not None:
            self._client = self._distributed.Client(spec.address, set_as_default=False)
            self._owns_client = True
        else:
            try:
                self._client = self._distributed.default_client()
            except ValueError:  # no client: a cluster of our own, on the first batch
                pass
        if spec.count is not None:
            self.workers = spec.count
        elif self._client is not None:
            self.workers = max(1, sum(self._client.nthreads().values()))
        else:
            self.workers = usable_cores()
        track(self)

    # -- the Backend protocol ----------------------------------------------------------------

    def submit(self, task: Task) -> None:
        with self._lock:
            if self._closed:
                raise PoolClosed("cannot submit work: the pool is shut down")
            self._pending.append(task)
        self._pump()

    def plan(self, job: Job) -> Plan | None:
        return None  # where its work runs was chosen by the caller

    def release(self, job: Job) -> None:
        pass  # (a function travels with each batch: workers keep a few, see _remote)

    def shutdown(self, *, wait: bool, cancel_pending: bool) -> None:
        with self._lock:
            self._closed = True
            dropped = list(self._pending) if cancel_pending else []
            if cancel_pending:
                self._pending.clear()
        for task in dropped:
            task.discard(task)
        if not wait:
            return
        with self._lock:
            while self._pending or self._requeued or self._in_flight or self._sending:
                self._idle.wait()
        self._disconnect()

    def terminate(self) -> None:
        with self._lock:
            self._closed = True
            dropped = list(self._pending)
            self._pending.clear()
            requeued = list(self._requeued)  # (started: their owners wait for an outcome)
            self._requeued.clear()
            cancelled = list(self._in_flight.values())
            self._in_flight.clear()
            while self._sending:  # (a submit in progress registers its future, then stops)
                self._idle.wait()
            cancelled += self._in_flight.values()
            self._in_flight.clear()
        for task in dropped:
            task.discard(task)
        # Each batch still out fails now, without waiting for Dask to call back: at
        # interpreter exit its callback thread is gone. What already runs on a worker of an
        # existing cluster runs on there (Dask cannot stop it); a cluster of ours ends.
        futures = [future for future, _, _ in cancelled]
        if futures and self._client is not None:
            with suppress(Exception):
                self._client.cancel(futures, force=True)
        for task in [*requeued, *(task for _, task, _ in cancelled)]:
            self._finish(task, failed(len(task.items), terminated, owner_loads=task.owner_loads))
        self._disconnect()

    def started(self) -> bool:
        """Whether it holds something only a shutdown ends: a client (and cluster) of its own,
        or batches it sent. (Another's current client is not its to close.)"""
        return self._owns_client or self._sent

    def blocking(self) -> AbstractContextManager[object]:
        return nullcontext()  # its workers are not threads of this process

    # -- sending -----------------------------------------------------------------------------

    def _pump(self) -> None:
        """Send pending tasks while the cluster holds fewer than its share."""
        while True:
            with self._lock:
                held = len(self._in_flight) + self._sending
                if held >= TASKS_PER_WORKER * self.workers:
                    return
                if self._requeued:
                    task, started = self._requeued.popleft(), True
                elif self._pending:
                    task, started = self._pending.popleft(), False
                else:
                    return
                self._sending += 1
            try:
                self._send(task, started=started)
            finally:
                with self._lock:
                    self._sending -= 1
                    self._idle.notify_all()  # (terminate waits for sends to end, too)

    def _notify_if_idle(self) -> None:
        if not (self._pending or self._requeued or self._in_flight or self._sending):
            self._idle.notify_all()

    def _send(self, task: Task, *, started: bool) -> None:
        if not started and not task.start():
            return
        try:
            function = self._function(task.job)
        except Exception as exc:
            exc.add_note("plait: the function could not be pickled for the Dask cluster")
            self._finish(
                task, failed(len(task.items), exc, ran=False, owner_loads=task.owner_loads)
            )
            return
        sent = Sent.encode(task)
        if sent.blob is None:  # not one item would pickle
            self._finish(task, sent.outcome([], {}, 0.0))
            return
        from ._remote import run_batch

        client = self._connect()
        self._sent = True
        future = client.submit(
            run_batch,
            function,
            b"".join(sent.blob),
            int(task.job.kind),
            task.timeout,
            tuple(sys.path),
            pure=False,
        )
        with self._lock:
            self._in_flight[future.key] = (future, task, sent)
        future.add_done_callback(self._done)

    def _function(self, job: Job) -> bytes:
        function = self._functions.get(job)
        if function is None:
            function = self._functions[job] = encode_function(job)
        return function

    def _connect(self) -> Any:
        """The client; the first call without one starts a cluster of our own."""
        with self._connecting:
            if self._client is None:
                self._cluster = LocalDaskCluster(self.workers)
                self._client = self._distributed.Client(self._cluster.address, set_as_default=False)
                self._owns_client = True
            return self._client

    def _disconnect(self) -> None:
        with self._connecting:
            client, cluster = self._client, self._cluster
            if self._owns_client and client is not None:
                client.close()
            if cluster is not None:
                cluster.close()
            self._cluster = None
            if self._owns_client:
                self._client = None

    # -- results (Dask's callback thread) ------------------------------------------------------

    def _done(self, future: Any) -> None:
        with self._lock:
            entry = self._in_flight.pop(future.key, None)
        if entry is None:
            return
        _, task, sent = entry
        overran = False
        try:
            outcome, again, overran = self._outcome(future, task, sent)
        except BaseException as exc:  # a bug in plait: the batch fails, nothing hangs
            error = PlaitError(f"plait could not read a Dask task's result: {exc!r}")
            error.__cause__ = exc
            outcome, again = failed(len(task.items), error, owner_loads=task.owner_loads), None
        if again is not None:
            with self._lock:
                self._requeued.extend(again)
        elif outcome is not None:
            self._finish(task, outcome)
        if overran:  # (after its owner has the TaskTimeout)
            self._restart_worker_of(future)
        self._pump()
        with self._lock:
            self._notify_if_idle()

    def _outcome(
        self, future: Any, task: Task, sent: Sent
    ) -> tuple[Outcome | None, list[Task] | None, bool]:
        """The batch's outcome, or the tasks to run instead (a crashed batch, item by item);
        and whether an item overran its task_timeout and still runs on its worker."""
        status = future.status  # (read once: a worker's death can change it meanwhile)
        if status == "finished":
            clean, elapsed, payload, overran = future.result()
            outcome = sent.answer(memoryview(payload), clean=clean, elapsed=elapsed)
            return outcome, None, overran
        if status == "cancelled":
            return failed(len(task.items), terminated, owner_loads=task.owner_loads), None, False
        if status != "error":
            # It finished, then its worker died holding the result before this callback read
            # it ("lost"; Dask may already be computing it again). It runs again as it is: a
            # result is never read from a future that no longer has one.
            future.release()
            return None, [task], False
        exc = future.exception()
        if isinstance(exc, self._distributed.KilledWorker):
            if len(task.items) == 1 and task.attempt == 1:
                # Dask fails every task its dead worker held, the one queued behind the
                # culprit too: a lone item is given one more run before it is blamed.
                task.attempt += 1
                return None, [task], False
            message = (
                f"the Dask worker running the item died ({type(exc).__name__}: {exc}); the "
                "other items of its batch ran again without it"
            )

            def crashed() -> BaseException:
                return WorkerCrashed(message)

            again = run_again(task, crashed=True, make_error=crashed)
            if again is not None:
                return None, again, False
            return failed(len(task.items), crashed, owner_loads=task.owner_loads), None, False
        error = PlaitError(f"the Dask task of a batch failed: {exc!r}")
        error.__cause__ = exc
        return failed(len(task.items), error, owner_loads=task.owner_loads), None, False

    def _restart_worker_of(self, future: Any) -> None:
        """End an item abandoned past its task_timeout: restart, through its nanny, the
        worker that ran it. (In Dask's callback thread: the results behind it wait the second
        or two that takes.)"""
        client = self._client
        try:
            holders = list(client.who_has([future]).get(future.key, ()))
            if holders:
                client.restart_workers(holders)
        except Exception:  # (gone meanwhile, or no nanny to restart it: it runs on)
            pass

    def _finish(self, task: Task, outcome: Outcome) -> None:
        try:
            task.finish(task, outcome)
        except Exception:  # a bug in the owner's callback: report it, keep going
            traceback.print_exc()
