"""What plait's cluster backends (Dask, Ray) share: plait's own queue and window over an
engine's tasks, one task per batch.

Each batch is one engine task, ``_remote.run_batch``, fed the function, the items and the result
in the process backend's encodings, so the answers are those of local processes. plait keeps its
own queue: at most ``TASKS_PER_WORKER`` batches per worker are on the cluster at once, so
``Pool.submit`` has the backpressure and the cancellable queue of the other backends, and a
map's window bounds what the cluster holds.

An engine adapter (``_dask``, ``_ray``) says how to connect, launch a batch and be called back
when it ends, read how it ended (an ``Ended``), cancel, and end an item that overran its
``task_timeout``. Everything else is here, once: a batch whose worker died runs again item by
item (``process._rerun``), so that only the item that kills its worker again fails, with
``WorkerCrashed``; a result lost with its worker before it was read runs again as it is; a
shutdown waits for every batch out, a terminate fails them at once and cancels them.
"""

from __future__ import annotations

import sys
import threading
import traceback
import weakref
from collections import deque
from collections.abc import Hashable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from .._errors import PlaitError, PoolClosed, TaskTimeout, WorkerCrashed, note
from .._plan import Plan
from .._task import Job, Outcome, Task, failed, note_attempts
from .._worker_spec import Workers
from ._base import Unprobed, terminated, track
from ._remote import Answer, encode_initializer
from .process._codec import Sent, encode_function
from .process._frames import CLEAN, UNREAD
from .process._rerun import read_again, run_again

TASKS_PER_WORKER = 2  # one running, one queued on its worker: no idle gap between batches


@dataclass(frozen=True)
class Ended:
    """How an engine's task ended: ``how`` is one of

    - ``"done"``: ``result`` is what ``run_batch`` returned;
    - ``"lost"``: it finished, but its result was lost with its worker before it was read;
    - ``"cancelled"``: the engine cancelled it (plait's terminate, or someone else);
    - ``"crashed"``: its worker died while it ran; ``detail`` says how, in the engine's words;
    - ``"failed"``: anything else; ``error`` is the engine's exception (a bug, in plait or in
      the engine).
    """

    how: str
    result: Answer | None = None
    detail: str = ""
    error: BaseException | None = None


class ClusterBackend(Unprobed):
    """plait's queue and window over an engine's tasks (see the module's docstring).
    Subclasses set ``name`` and ``engine`` and implement the hooks below."""

    name: str
    engine: str  # its name in messages: "Dask", "Ray"
    batch_limit: int | None = None

    def __init__(self, workers: int, spec: Workers) -> None:
        self.workers = workers
        self._spec = spec  # its initializer travels with each batch (see _shipped)
        self._initializer: bytes | None = None
        self._initializer_encoded = False
        self._encoding = threading.Lock()  # (each encoding has a token of its own: one only)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified when nothing is in flight
        self._pending: deque[Task] = deque()  # not started yet
        self._requeued: deque[Task] = deque()  # started, to run again (their worker died)
        self._in_flight: dict[Hashable, tuple[Any, Task, Sent]] = {}  # by the task's key
        self._sending = 0  # taken from _pending, not yet in _in_flight
        # Workers being ended after an item overran its time limit (``_end_overran``): the
        # pool ends after them, so that the client is not closed under their calls.
        self._ending_overran = 0
        self._functions: weakref.WeakKeyDictionary[Job, bytes] = weakref.WeakKeyDictionary()
        self._closed = False
        self._sent = False  # a batch went to the cluster
        track(self)

    # -- the engine's side (adapters implement these) ------------------------------------------

    def _owns_connection(self) -> bool:
        """Whether it holds a connection (or cluster) of its own, which only a shutdown ends."""
        raise NotImplementedError

    def _launch(
        self, function: bytes, items: bytes, kind: int, timeout: float | None, init: bytes | None
    ) -> Any:
        """Send one batch to ``_remote.run_batch`` (connecting first if need be); return its
        handle."""
        raise NotImplementedError

    def _key(self, handle: Any) -> Hashable:
        raise NotImplementedError

    def _when_done(self, handle: Any) -> None:
        """Have ``self._done(handle)`` called once the task ends."""
        raise NotImplementedError

    def _ended(self, handle: Any) -> Ended:
        """How the task ended (called once it has)."""
        raise NotImplementedError

    def _cancel(self, handles: list[Any]) -> None:
        """Stop these tasks, running or not, as far as the engine can; never raise."""
        raise NotImplementedError

    def _end_overran(self, handle: Any, where: bool | str) -> None:
        """An item of this task overran its task_timeout and still runs, abandoned, on its
        worker (``where``: its address, if the worker gave it): end it if the engine can."""

    def _disconnect(self) -> None:
        """Close what it opened (a connection, a cluster of its own)."""
        raise NotImplementedError

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
            while (
                self._pending
                or self._requeued
                or self._in_flight
                or self._sending
                or self._ending_overran
            ):
                self._idle.wait()
        self._disconnect()

    def terminate(self, *, grace: bool = True) -> None:
        with self._lock:
            self._closed = True
            dropped = list(self._pending)
            self._pending.clear()
            requeued = list(self._requeued)  # (started: their owners wait for an outcome)
            self._requeued.clear()
            cancelled = list(self._in_flight.values())
            self._in_flight.clear()
            while self._sending:  # (a send in progress registers its task, then stops)
                self._idle.wait()
            cancelled += self._in_flight.values()
            self._in_flight.clear()
        for task in dropped:
            task.discard(task)
        # Each batch still out fails now, without waiting for the engine to call back: at
        # interpreter exit its callback thread may be gone.
        handles = [handle for handle, _, _ in cancelled]
        if handles:
            self._cancel(handles)
        for task in [*requeued, *(task for _, task, _ in cancelled)]:
            self._finish(task, failed(len(task.items), terminated, owner_loads=task.owner_loads))
        self._disconnect()

    def started(self) -> bool:
        """Whether it holds something only a shutdown ends: a connection (and cluster) of its
        own, or batches it sent. (Another's connection is not its to close.)"""
        return self._owns_connection() or self._sent

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
        if not (
            self._pending
            or self._requeued
            or self._in_flight
            or self._sending
            or self._ending_overran
        ):
            self._idle.notify_all()

    def _send(self, task: Task, *, started: bool) -> None:
        if not started and not task.start():
            return
        try:
            function, init = self._shipped(task.job)
        except Exception as exc:
            note(
                exc,
                f"plait: the function or the initializer could not be pickled for the "
                f"{self.engine} cluster",
            )
            self._finish(
                task, failed(len(task.items), exc, ran=False, owner_loads=task.owner_loads)
            )
            return
        sent = Sent.encode(task)
        if sent.blob is None:  # not one item would pickle
            self._finish(task, sent.outcome([], {}, 0.0))
            return
        self._sent = True
        blob = b"".join(sent.blob)
        handle = self._launch(function, blob, int(task.job.kind), task.timeout, init)
        with self._lock:
            self._in_flight[self._key(handle)] = (handle, task, sent)
        self._when_done(handle)

    def _shipped(self, job: Job) -> tuple[bytes, bytes | None]:
        """What travels with each batch of ``job``: its function, and the initializer."""
        function = self._functions.get(job)
        if function is None:
            function = self._functions[job] = encode_function(job)
        with self._encoding:
            if not self._initializer_encoded:
                self._initializer = encode_initializer(self._spec)
                self._initializer_encoded = True
        return function, self._initializer

    # -- results (the engine's callback thread) ------------------------------------------------

    def _done(self, handle: Any) -> None:
        with self._lock:
            entry = self._in_flight.pop(self._key(handle), None)
        if entry is None:
            return
        _, task, sent = entry
        overran: bool | str = False
        try:
            outcome, again, overran = self._outcome(handle, task, sent)
        except BaseException as exc:  # a bug in plait: the batch fails, nothing hangs
            error = PlaitError(f"plait could not read a {self.engine} task's result: {exc!r}")
            error.__cause__ = exc
            outcome, again = failed(len(task.items), error, owner_loads=task.owner_loads), None
        if overran:  # (counted before its owner has the TaskTimeout, and the pool may end)
            with self._lock:
                self._ending_overran += 1
        if again is not None:
            with self._lock:
                self._requeued.extend(again)
        elif outcome is not None:
            self._finish(task, outcome)
        if overran:  # (after its owner has the TaskTimeout)
            try:
                self._end_overran(handle, overran)
            finally:
                with self._lock:
                    self._ending_overran -= 1
        self._pump()
        with self._lock:
            self._notify_if_idle()

    def _outcome(
        self, handle: Any, task: Task, sent: Sent
    ) -> tuple[Outcome | None, list[Task] | None, bool | str]:
        """The batch's outcome, or the tasks to run instead (a crashed batch, item by item);
        and whether an item overran its task_timeout and still runs on its worker (there)."""
        ended = self._ended(handle)
        if ended.how == "done":
            assert ended.result is not None
            kind, elapsed, payload, overran, where = ended.result
            # The worker could not unpickle the items (none ran): item by item, the one that
            # will not load fails alone (see ``_rerun.read_again``). (Taken for a clean batch,
            # its items' results were read as none, and the map went on without them.)
            if kind & UNREAD and (parts := read_again(task)):
                return None, parts, overran
            if overran and _retried(task):  # past its task_timeout: Retry(timeouts=True)
                return None, [task], overran
            outcome = sent.answer(memoryview(payload), clean=bool(kind & CLEAN), elapsed=elapsed)
            outcome.where = where
            if overran and task.attempt > 1 and 0 in outcome.errors:
                note_attempts(outcome.errors[0], task.attempt)
            return outcome, None, overran
        if ended.how == "cancelled":
            return failed(len(task.items), terminated, owner_loads=task.owner_loads), None, False
        if ended.how == "lost":
            # It finished, then its worker died holding the result before it was read (the
            # engine may already be computing it again). It runs again as it is: a result is
            # never read from a task that no longer has one.
            return None, [task], False
        if ended.how == "crashed":
            if len(task.items) == 1 and task.attempt == 1:
                # An engine fails every task its dead worker held, the one queued behind the
                # culprit too: a lone item is given one more run before it is blamed.
                task.attempt += 1
                return None, [task], False
            message = (
                f"the {self.engine} worker running the item died ({ended.detail}); the other "
                "items of its batch ran again without it"
            )

            def crashed() -> BaseException:
                return WorkerCrashed(message)

            again = run_again(task, crashed=True, make_error=crashed)
            if again is not None:
                return None, again, False

            def last() -> BaseException:  # (no more attempts: it says how many failed)
                return note_attempts(crashed(), task.attempt)

            return failed(len(task.items), last, owner_loads=task.owner_loads), None, False
        error = PlaitError(f"the {self.engine} task of a batch failed: {ended.error!r}")
        error.__cause__ = ended.error
        return failed(len(task.items), error, owner_loads=task.owner_loads), None, False

    def _finish(self, task: Task, outcome: Outcome) -> None:
        try:
            task.finish(task, outcome)
        except Exception:  # a bug in the owner's callback: report it, keep going
            traceback.print_exc()


def caller_path() -> tuple[str, ...]:
    """The caller's module path, for workers on the same machine to import its modules."""
    return tuple(sys.path)


def _retried(task: Task) -> bool:
    """Whether the task, its item past its ``task_timeout``, runs again (its retry policy
    counts timeouts): sent again at once, as on local processes. (The worker's TaskTimeout
    came back as any finished batch's result, and was never weighed against the policy.)"""
    retry = task.job.retry
    timeout = TaskTimeout("the item ran longer than its task_timeout", timeout=task.timeout or 0.0)
    if retry is None or not retry.applies(timeout, task.attempt):
        return False
    task.attempt += 1
    return True
