"""Process backend: worker processes fed by one dispatcher thread over socket pairs.

    callers (any thread)         dispatcher thread                      worker processes
    ────────────────────         ─────────────────                      ────────────────
    submit(task) ─► pending ─┐   select() over every socket + a wake-up pipe
                  wake-up ───┴─► grow: a task no worker is free for     (started as work
                                 starts one, up to ``workers``)          needs them)
                                 assign: each worker holds ≤ 2 tasks ──► RUN frame
                                 (a worker gets a function once: DEF)    execute(batch)
                                 read DONE frames ◄──────────────────── DONE frame
                                 task.finish(outcome)
                                 EOF, or its process ended: it died ─► WorkerCrashed for its
                                 running task, queued ones go back, a new worker starts

What crosses the sockets is in ``_frames`` and ``_codec``; the worker's side is ``_child``; the
workers themselves (started as work needs them, recycled, replaced, kept warm between pools)
are ``_crew``'s; how a worker starts, ``_launch``; how it is kept warm, ``_warm``. The
dispatcher never blocks on a write (the sockets are non-blocking, writes queue up), so a worker
sending a large result while we send it a large batch cannot deadlock the pair.
"""

from __future__ import annotations

import itertools
import os
import selectors
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import partial

from ..._errors import PlaitError, PoolClosed, TaskTimeout, WorkerCrashed, note
from ..._owner import forked_error
from ..._plan import Plan
from ..._task import Job, Outcome, Task, failed, note_attempts
from ..._waits import attentive, cut
from ..._worker_spec import Workers
from .. import _spare
from .._base import Unprobed, finish_at_exit, given_up, terminated, track
from . import _warm
from ._codec import Sent, encode_function, might_be_ctrl_c
from ._crew import Crew
from ._frames import CLEAN, TIMED, UNREAD, Tag, frame, parse
from ._handle import WorkerHandle, crash_message
from ._launch import prepare
from ._limits import worker_count
from ._rerun import read_again, run_again
from ._wakeup import Wakeup

TASKS_PER_WORKER = 2  # one running, one waiting in the socket: no idle gap between batches
# A second task waits behind the first, so it is sent only when that pays: batches are short
# (the round trip would be a noticeable gap) and no other worker could start it sooner. Batches
# are sized to about 25 ms (``_chunking``); past a few times that, items are slow one by one,
# and a task queued behind another could have waited for whichever worker came free first.
PREFETCH_BELOW = 0.1


class ProcessBackend(Unprobed):
    name = "process"

    def __init__(self, spec: Workers) -> None:
        self.spec = spec
        self.workers = worker_count(spec.count)  # (refused at the call if no pool can hold it)
        self.batch_limit = spec.max_tasks  # a batch never carries a worker past its quota
        self.start_method = spec.start_method or "forkserver"
        self._crew = Crew(spec, self.start_method)  # the worker processes
        self._functions: weakref.WeakKeyDictionary[Job, bytes] = weakref.WeakKeyDictionary()
        self._task_ids = itertools.count()  # wire ids of tasks, unique for this backend
        self._typical: float | None = None  # how long a batch takes, lately
        self._lock = threading.Lock()
        self._pending: deque[Task] = deque()  # not started yet
        self._requeued: deque[Task] = deque()  # started, sent to a worker that died before them
        self._forget: list[int] = []
        self._closed = False
        self._stop_now = False
        self._started = False  # the first submit starts the dispatcher
        self._thread: _spare.Service | None = None  # the dispatcher, once it runs
        self._launched = threading.Event()  # ``_thread`` is set: it can be joined
        self._wakeup = Wakeup()
        self._owner = os.getpid()
        self._forked = False  # this is a fork of the owner process: the pool is not ours
        _backends.add(self)

    # -- callers' side -------------------------------------------------------------------

    def submit(self, task: Task) -> None:
        if self._forked:
            raise forked_error(self._owner)
        with self._lock:
            if self._closed:
                raise PoolClosed("cannot submit work: the pool is shut down")
            self._pending.append(task)
            first = not self._started
            if first:
                self._started = True
                prepare(self.start_method)  # before the dispatcher thread exists
                self._wakeup.open()
                self._crew.open()
        if first:
            try:
                self._send_early()
            finally:
                self._thread = _spare.start(self._dispatch, "plait-process-dispatcher")
                self._launched.set()
                track(self)
        self._wakeup.wake()

    def _send_early(self) -> None:
        """On the first submit, before the dispatcher thread exists: take a parked worker
        and send it the first task from the caller's thread, so the
        worker runs it while the thread starts (a thread takes about 0.3 ms to start, several
        times a warm worker's round trip). Only what cannot fail is done here: a task whose
        function or items would not pickle is left to the dispatcher, which reports it."""
        crew = self._crew
        if not (crew.reusable and _warm.any_parked() and crew.take_parked(None)):
            return  # (one worker is enough: the dispatcher takes the rest)
        if (task := self._next_task()) is None:
            return
        if self._write_task(crew.workers[0], task) is not None:
            with self._lock:  # the dispatcher tries again, and reports the failure
                self._requeued.appendleft(task)

    def plan(self, job: Job) -> Plan | None:
        return None  # where its work runs was chosen by the caller

    def release(self, job: Job) -> None:
        with self._lock:
            self._forget.append(job.id)
        self._wakeup.wake()

    def shutdown(self, *, wait: bool, cancel_pending: bool) -> None:
        if not wait:
            finish_at_exit(self)  # (else its workers are terminated at exit: see _base)
        self._close(wait=wait, cancel_pending=cancel_pending, stop_now=False)

    def terminate(self, *, grace: bool = True) -> None:  # (a process is ended at once)
        self._close(wait=True, cancel_pending=True, stop_now=True)

    def _close(self, *, wait: bool, cancel_pending: bool, stop_now: bool) -> None:
        if self._forked:  # the owner shuts it down
            return
        with self._lock:
            self._closed = True
            self._stop_now |= stop_now
            dropped = self._take_pending() if cancel_pending else []
        for task in dropped:
            task.discard(task)
        self._wakeup.wake()
        if self._started and wait:
            self._launched.wait()  # (the first submit may be sending its task early)
            assert self._thread is not None
            if not self._thread.is_current():
                attentive(self._thread.join, None)  # (a Ctrl-C meanwhile: seen in time)

    def started(self) -> bool:
        return self._started

    def blocking(self) -> AbstractContextManager[object]:
        return nullcontext()  # its workers are not threads of this process

    def _take_pending(self) -> list[Task]:
        dropped, self._pending = list(self._pending), deque()
        return dropped

    # -- dispatcher thread ---------------------------------------------------------------

    def _dispatch(self) -> None:
        try:
            self._crew.selector.register(self._wakeup.fd, selectors.EVENT_READ)
            while not self._finished():
                self._crew.grow(self.workers, self._waiting)
                self._assign()
                self._forget_jobs()
                self._poll()
        except BaseException as exc:  # a bug in plait: fail everything rather than hang
            self._fail_everything(exc)
            raise
        finally:
            self._stop_workers()
            self._wakeup.close()
            self._crew.selector.close()

    def _stop_workers(self) -> None:
        """End every worker: idle ones are kept warm for the next pool when they can be, the
        rest end (see ``stop_all``). Tasks they still held (only after terminate) get
        ``Cancelled``: each worker's first one as given up where it ran, since it began (a
        trace draws it there), those behind it and those waiting to be re-sent as never run."""
        workers = self._crew.stop(kill=self._stop_now)
        with self._lock:  # only after terminate() can tasks be left waiting to be re-sent
            left = list(self._requeued)
            self._requeued.clear()
        for worker in workers:
            held = [sent.task for sent in worker.tasks.values()]
            if held and not worker.unconfirmed:  # its first task ran (see ``reuse``)
                running = held.pop(0)
                self._finish(running, given_up(running, worker.head_began(), worker.where))
            left.extend(held)  # (waiting in its socket behind that one)
        for task in left:
            unrun = failed(len(task.items), terminated, ran=False, owner_loads=task.owner_loads)
            self._finish(task, unrun)

    def _waiting(self) -> int:
        """Tasks not yet sent to a worker."""
        with self._lock:
            return len(self._pending) + len(self._requeued)

    def _finished(self) -> bool:
        with self._lock:
            if self._stop_now:
                return True
            if not self._closed or self._pending or self._requeued:
                return False
        return not any(worker.tasks for worker in self._crew.workers)

    def _assign(self) -> None:
        workers = self._crew.workers
        if self._crew.unstartable is not None and not workers:
            self._fail_unstartable()
            return
        # Fill the emptiest workers first, so a lone task never queues behind another.
        prefetch = (
            self._typical is not None
            and self._typical < PREFETCH_BELOW
            and all(worker.ready for worker in workers)
        )
        for slot in range(TASKS_PER_WORKER if prefetch else 1):
            for worker in list(workers):
                if len(worker.tasks) > slot or worker.retiring or not worker.ready:
                    continue
                while (task := self._next_task()) is not None:
                    if not worker.fits(task):
                        with self._lock:  # over its quota: it takes no more, the task waits
                            self._requeued.appendleft(task)
                        worker.items_sent = worker.max_tasks or 0
                        if not worker.tasks:
                            self._crew.recycle(worker)
                        break
                    if self._send(worker, task):
                        break  # (not sent: it failed at once, and the worker is still free)
                else:
                    return

    def _next_task(self) -> Task | None:
        while True:
            with self._lock:
                if self._requeued:
                    return self._requeued.popleft()
                if not self._pending:
                    return None
                task = self._pending.popleft()
            # Not under our lock: the owner's start() may call back in (a call cancelled
            # while it waited releases its job: ``release``, which takes the lock).
            if task.start():
                return task

    def _send(self, worker: WorkerHandle, task: Task) -> bool:
        """Send ``task`` to ``worker``; False if it failed before it could be sent."""
        failure = self._write_task(worker, task)
        if failure is not None:
            self._finish(task, failure)
        return failure is None

    def _write_task(self, worker: WorkerHandle, task: Task) -> Outcome | None:
        """Send ``task`` to ``worker``; or the outcome it failed with, unsent, if its function
        or all of its items would not pickle."""
        job = task.job
        if job.id not in worker.jobs:
            try:
                function = self._function(job)
            except BaseException as exc:  # (whatever a __reduce__ of the user's raised)
                if might_be_ctrl_c(exc):
                    raise
                note(exc, "plait: the function could not be pickled for a worker process")
                return failed(len(task.items), exc, ran=False, owner_loads=task.owner_loads)
            worker.writer.add(frame(Tag.DEF, job=job.id, payload=function))
            worker.jobs.add(job.id)
        sent = Sent.encode(task)
        if sent.blob is None:  # not one item would pickle
            return sent.outcome([], {}, 0.0)
        if not worker.tasks:
            worker.next_head()
        task_id = next(self._task_ids)
        worker.tasks[task_id] = sent
        worker.items_sent += len(task.items)
        kind = job.kind | TIMED if task.timeout is not None else job.kind
        worker.writer.add(frame(Tag.RUN, task=task_id, job=job.id, kind=kind, payload=sent.blob))
        self._crew.write_now(worker)
        return None

    def _function(self, job: Job) -> bytes:
        """The DEF payload of ``job``, made once; kept weakly (a job may never be released)."""
        function = self._functions.get(job)
        if function is None:
            function = self._functions[job] = encode_function(job)
        return function

    def _forget_jobs(self) -> None:
        with self._lock:
            forget, self._forget = self._forget, []
        for job_id in forget:
            for worker in self._crew.workers:
                if job_id in worker.jobs:
                    worker.jobs.discard(job_id)
                    worker.writer.add(frame(Tag.FORGET, job=job_id))
                    self._crew.want_write(worker)

    def _expire(self) -> None:
        """Kill each worker whose running item is past its deadline; the item gets TaskTimeout."""
        now = time.monotonic()
        for worker in list(self._crew.workers):
            deadline = worker.deadline()
            if deadline is None or now < deadline:
                continue
            timeout = next(iter(worker.tasks.values())).task.timeout or 0.0
            message = worker.overrun_message(timeout)
            self._lose_worker(worker, partial(TaskTimeout, message, timeout=timeout))

    def _poll(self) -> None:
        crew = self._crew
        deadlines = (d for worker in crew.workers if (d := worker.deadline()) is not None)
        deadline = min(deadlines, default=None)
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        # (A deadline a month away is legal; epoll is not told of it: see ``_waits``. Woken
        # early, ``_expire`` finds nothing due, and the loop comes round to wait again.)
        for key, mask in crew.selector.select(cut(timeout)):
            if key.data is None:
                self._wakeup.drain()
                continue
            worker: WorkerHandle = key.data
            if worker not in crew.workers:  # lost by an earlier event of this round
                continue
            if key.fileobj is not worker.sock:  # its exit descriptor: the process has ended
                self._worker_exited(worker)
                continue
            if mask & selectors.EVENT_WRITE:
                if not worker.writer.flush(worker.sock):  # the worker is gone
                    self._lose_worker(worker, None)
                    continue
                if not worker.writer:
                    crew.selector.modify(worker.sock, selectors.EVENT_READ, worker)
            if mask & selectors.EVENT_READ:
                frames, closed = worker.reader.read(worker.sock)
                for body in frames:  # what the worker sent before it went: delivered
                    self._receive(worker, body)
                if closed and worker in crew.workers:  # (its last result may have retired it)
                    self._lose_worker(worker, None)
        if deadline is not None:
            self._expire()

    def _worker_exited(self, worker: WorkerHandle) -> None:
        """The worker process ended, though its socket may not show it: a process the task
        forked holds the worker's end, and no EOF comes while that one lives. What the worker
        sent before it ended is delivered; then it is lost like a worker whose socket closed."""
        while worker in self._crew.workers:  # (a DONE may retire it)
            frames, closed = worker.reader.read(worker.sock)
            for body in frames:
                self._receive(worker, body)
            if closed or not frames:
                break
        if worker in self._crew.workers:
            self._lose_worker(worker, None)

    def _receive(self, worker: WorkerHandle, body: bytearray) -> None:
        head, payload = parse(body)
        if head.tag == Tag.READY:
            self._crew.ready(worker)
            return
        if head.tag == Tag.STARTED:
            if worker.tasks and next(iter(worker.tasks)) == head.task:
                worker.head_started = time.monotonic()
            return
        sent = worker.tasks.pop(head.task)  # a DONE
        worker.next_head()  # the worker starts its next task right away
        if head.kind & UNREAD and (parts := read_again(sent.task)):
            with self._lock:  # (first: they are the oldest work)
                self._requeued.extendleft(reversed(parts))
            return
        outcome = sent.answer(payload, clean=bool(head.kind & CLEAN), elapsed=head.job / 1e9)
        elapsed = outcome.elapsed
        self._typical = elapsed if self._typical is None else (self._typical + elapsed) / 2
        outcome.sent_bytes += len(body)  # results count too: the sizer caps bytes both ways
        outcome.where = worker.where
        self._finish(sent.task, outcome)
        if worker.retiring and not worker.tasks:
            self._crew.recycle(worker)

    def _lose_worker(self, worker: WorkerHandle, error: Callable[[], BaseException] | None) -> None:
        """End a worker that died (error None: WorkerCrashed) or overran (error: TaskTimeout).
        Its running item fails with that error (a running batch of several items is run again
        item by item, see ``_rerun``), its queued task goes to another worker, and a new worker
        takes its place."""
        self._crew.drop(worker)
        returncode = worker.stop()
        tasks = [sent.task for sent in worker.tasks.values()]
        if tasks and worker.unconfirmed and error is None:  # it ran none of them: see reuse()
            with self._lock:
                self._requeued.extendleft(reversed(tasks))
        elif tasks:
            running, queued = tasks[0], tasks[1:]
            message = crash_message(worker.proc.pid, returncode)

            def make_error() -> BaseException:
                return error() if error else WorkerCrashed(message, exitcode=returncode)

            def last_error() -> BaseException:  # (no more attempts: it says how many failed)
                return note_attempts(make_error(), running.attempt)

            # For a trace: where it ran, and since when.
            where = worker.where
            began = worker.head_began()
            ran_for = time.perf_counter() - began if began else 0.0
            again = run_again(
                running, crashed=error is None, make_error=make_error, where=where, began=began
            )
            with self._lock:
                self._requeued.extendleft(reversed([*(again or ()), *queued]))
            if again is None:
                outcome = failed(len(running.items), last_error, owner_loads=running.owner_loads)
                outcome.elapsed, outcome.began, outcome.where = ran_for, began, where
                self._finish(running, outcome)
        if not self._stop_now:
            self._crew.replace(worker, returncode)

    def _fail_unstartable(self) -> None:
        """No worker is left, and none is started any more: every task fails, unrun."""
        error = self._crew.unstartable
        assert error is not None
        while (task := self._next_task()) is not None:
            outcome = failed(len(task.items), error, ran=False, owner_loads=task.owner_loads)
            self._finish(task, outcome)

    def _finish(self, task: Task, outcome: Outcome) -> None:
        try:
            task.finish(task, outcome)
        except BaseException:  # a bug in the owner's callback: report it, keep dispatching
            # (Whatever it raised: a future's done-callbacks are the user's code, and one that
            # raised SystemExit ended this thread, and with it the pool.)
            traceback.print_exc()

    def _after_fork_in_child(self) -> None:
        """In a fork of the pool's owner: close our copies of the pool's descriptors (workers must
        see EOF when the owner closes its own; ``_handle`` closes the sockets), refuse work."""
        self._forked = True
        self._closed = True
        self._lock = threading.Lock()  # another thread may have held it at the fork
        self._pending.clear()  # the owner's to run, not ours
        self._requeued.clear()
        self._crew.workers = []
        if self._wakeup.fd < 0:
            return  # never started, or ended: it holds no descriptor
        self._wakeup.after_fork_in_child()
        self._crew.selector.close()

    def _fail_everything(self, exc: BaseException) -> None:
        error = PlaitError(f"plait's process dispatcher failed: {exc!r}")
        error.__cause__ = exc
        with self._lock:
            self._closed = True
            tasks = [*self._requeued, *self._take_pending()]
            self._requeued.clear()
        for worker in self._crew.workers:
            tasks.extend(sent.task for sent in worker.tasks.values())
            worker.tasks.clear()
        for task in tasks:
            self._finish(task, failed(len(task.items), error, owner_loads=task.owner_loads))


# Every process backend of this process, for the fork hook.
_backends: weakref.WeakSet[ProcessBackend] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for backend in list(_backends):
        backend._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
