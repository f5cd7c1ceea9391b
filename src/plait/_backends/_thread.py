"""Thread backend: a fixed set of threads taking whole batches from one queue.

No Future and no queue round trip per item: a batch of tiny tasks costs one ``SimpleQueue``
put/get and one callback, and the items run inside ``execute``'s tight loop.

A thread cannot be killed. When an item overruns its ``task_timeout``, a watchdog thread gives
the item its ``TaskTimeout``, cancels the task's token (``plait.cancelled()`` turns True in it),
abandons the thread and starts a replacement, so the pool keeps its capacity. The abandoned
thread's eventual result is dropped and it exits instead of taking more work.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from functools import partial
from queue import Empty, SimpleQueue

from .. import _item_clock as item_clock
from .._cancel import set_current_token
from .._errors import CancelReason, PoolClosed, TaskTimeout
from .._plan import Plan
from .._task import THIS_PROCESS, Job, Outcome, Task, execute, failed, note_attempts
from .._waits import attentive, cut
from .._warnings import warn_at_function
from .._worker_spec import Workers, start_worker
from ._base import Unprobed, default_workers, finish_at_exit, given_up
from ._split import SPLIT_AFTER, Tail

TERMINATE_GRACE = 0.5  # seconds terminate() waits for running tasks before abandoning them
SPAWN = 2  # threads a new thread starts for a resize, before it takes work (see _owed)


class ThreadBackend(Unprobed):
    name = "thread"
    batch_limit: int | None = None

    def __init__(self, spec: Workers) -> None:
        self.spec = spec
        self.workers = spec.count or default_workers("thread")
        self.abandoned = 0  # threads given up on after a timeout or a terminate
        self._queue: SimpleQueue[Task | None] = SimpleQueue()
        lock = threading.Lock()
        self._cond = threading.Condition(lock)
        # A resize to fewer threads parks the surplus rather than ending them: an adaptive
        # width goes down and up again all the time, and a parked thread wakes in microseconds
        # where a new one takes a third of a millisecond to start. Parked threads wait here;
        # each wake-up is a ticket in _unparked, taken by whichever parked thread wakes first.
        self._parking = threading.Condition(lock)
        self._parked = 0
        self._unparked = 0
        self._widest = self.workers  # the widest limit a resize set: no more threads park
        self._live: set[threading.Thread] = set()  # started, not abandoned, not yet exited
        self._all: list[threading.Thread] = []
        self._given_up: set[threading.Thread] = set()  # abandoned: never joined
        # Running tasks, with their deadline (inf when untimed) and, if a trace records them,
        # when they began (perf_counter(); else 0.0): a terminate that gives one up says so.
        self._running: dict[threading.Thread, tuple[Task, float, float]] = {}
        # ... and, of the untimed ones, the items not yet started: a batch that runs long while
        # its consumer waits gives them to another thread (``watch``, ``_split``).
        self._tails: dict[threading.Thread, Tail] = {}
        self._watchdog: threading.Thread | None = None
        # Threads start on demand, up to `workers`. A thread about to wait for work drops a
        # token here; a submit that takes one knows a thread is free for its task, one that
        # finds none starts a thread. Tokens = free threads - queued tasks, kept exact by the
        # queue's own atomic operations: no lock per task.
        self._free: SimpleQueue[bool] = SimpleQueue()
        self._closed = False
        # Worker threads now waiting for this pool's own results (see blocking()): the pool
        # may run that many threads beyond `workers` meanwhile.
        self._compensation = 0
        # Threads a resize still owes the queued tasks. Each new thread starts up to SPAWN of
        # them before it takes work: a resize by 128 costs its caller two thread starts (about
        # 0.3 ms each), not 128, and the rest start side by side, in a tree.
        self._owed = 0
        # Threads in their task's finish callback, and those of them that queued their own next
        # task there (``submit_next``).
        self._finishing: set[threading.Thread] = set()
        # Each thread's initializer error, if it failed (see run_here: kept for its life).
        self._init_errors: dict[threading.Thread, BaseException | None] = {}
        self._handed_on: set[threading.Thread] = set()

    def resize(self, workers: int) -> None:
        """Run up to ``workers`` threads from now on (``backend="auto"`` adapts the width).
        Tasks already queued get threads at once: they were queued behind the old limit, and
        no submit might come to start threads for them (the window is full of them)."""
        with self._cond:
            self.workers = workers
            self._widest = max(self._widest, workers)
            if self._closed:
                return
            wake = min(self._parked - self._unparked, workers - self._active())
            if wake > 0:
                self._unpark(wake)
            self._owed = max(0, min(workers - self._active(), self._queue.qsize()))
            self._spawn()
        # (Fewer: threads beyond the limit park as they finish their task, see _work.)

    def _active(self) -> int:
        """Threads that take work: live ones not parked (holding _cond)."""
        return len(self._live) - self._parked + self._unparked

    def _unpark(self, count: int) -> None:  # holding _cond
        self._unparked += count
        self._parking.notify(count)

    def _spawn(self) -> None:
        """Start up to SPAWN of the threads a resize owes (holding _cond). Even after a
        shutdown: the tasks queued before it still run, and they are what is owed."""
        for _ in range(SPAWN):
            if self._owed <= 0 or self._active() >= self.workers:
                self._owed = 0
                return
            self._owed -= 1
            self._start_thread(spawn=True)

    def submit(self, task: Task) -> None:
        self._submit(task, here=False)

    def watch(self) -> float | None:
        """A map's consumer waits for results: a batch that has run ``SPLIT_AFTER`` gives the
        items it has not started to another thread, if one is free or may start (its items
        may be waiting for those: ``_split``). Looked at again while the consumer waits (a
        batch it waits for may not have started yet)."""
        now = time.perf_counter()
        for thread, tail in list(self._tails.items()):
            entry = self._running.get(thread)
            if entry is None or not tail.due(now) or not self._room():
                continue
            tail.split(entry[0], self.submit)
        return SPLIT_AFTER / 2

    def _room(self) -> bool:
        """Whether a task submitted now starts at once: a thread is free, or may start."""
        if not self._free.empty():
            return True
        with self._cond:
            return not self._closed and self._active() < self.workers + self._compensation

    def submit_next(self, task: Task) -> None:
        """``submit``, from one of this pool's threads as it finishes its task (auto's probe
        runs its batches one after another so): the task is that thread's next one, taken
        from the queue right after, so no other thread is woken or started for it (a start
        costs 0.3 ms). Anywhere else, or a second time in one finish, it is ``submit``."""
        self._submit(task, here=True)

    def _submit(self, task: Task, *, here: bool) -> None:
        with self._cond:
            if self._closed:
                raise PoolClosed("cannot submit work: the pool is shut down")
            me = threading.current_thread()
            if here and me in self._finishing and me not in self._handed_on:
                self._handed_on.add(me)  # (see _work: it takes no token for this round)
            else:
                try:
                    self._free.get_nowait()
                except Empty:
                    self._add_thread()
            if task.timeout is not None and self._watchdog is None:
                self._watchdog = threading.Thread(
                    target=self._watch, name="plait-thread-watchdog", daemon=True
                )
                self._watchdog.start()
            # Under the lock: a shutdown cannot queue its exit markers between our check of
            # _closed and this put, which would leave the task behind every thread's exit.
            self._queue.put(task)

    def _add_thread(self) -> None:
        """One more thread takes work, if the limit allows: a parked one, else a new one
        (holding _cond)."""
        if self._active() >= self.workers + self._compensation:
            return
        if self._parked > self._unparked:
            self._unpark(1)
        else:
            self._start_thread()

    def _start_thread(
        self, first: Task | None = None, *, free: bool = False, spawn: bool = False
    ) -> None:
        """Start a worker thread (holding _cond). ``free``: it comes with no task of its own, so
        it counts as free at once (a replacement); a thread started for a submit does not.
        ``spawn``: it starts more of the threads a resize owes, first thing."""
        thread = threading.Thread(
            target=self._work,
            args=(first, free, spawn),
            name=f"plait-thread-{len(self._all)}",
            daemon=True,
        )
        self._live.add(thread)
        self._all.append(thread)
        thread.start()
        if self._closed:  # a replacement after shutdown: it needs its own way out
            self._queue.put(None)

    def _work(self, first: Task | None, free: bool, spawn: bool) -> None:
        me = threading.current_thread()
        where = _where(me)  # (for a trace: thread names repeat, with the native id they do not)
        task = first
        if spawn:
            with self._cond:
                self._spawn()
        init_error = self._init_errors[me] = start_worker(self.spec)
        if free:
            self._free.put(True)
        try:
            while True:
                if task is None:
                    task = self._take()
                    if task is None:
                        return
                    if not task.start():
                        task = None
                        self._free.put(True)
                        continue
                if not self._run(me, task, init_error, where):
                    return  # abandoned: the item already has its TaskTimeout, or runs elsewhere
                task = None
                if me in self._handed_on:  # it queued a task as it finished: no token for it
                    self._handed_on.discard(me)
                    continue
                if self._active() > self.workers + self._compensation and self._park(me):
                    return  # the pool shut down while this thread was parked
                self._free.put(True)
        finally:
            self._init_errors.pop(me, None)
            with self._cond:
                self._live.discard(me)
                self._cond.notify_all()

    def run_here(self, task: Task) -> None:
        """Run ``task`` now, in this thread, as the worker it is: from one of this pool's
        threads as it finishes its task (auto hands on the batches that waited for a plan to
        run inline: the probe's thread that made it runs them, one after another, and no
        other thread is woken or started for them, 0.3 ms each). Anywhere else, ``submit``."""
        me = threading.current_thread()
        if me not in self._finishing:
            self.submit(task)
            return
        if not task.start():
            return
        job, init_error = task.job, self._init_errors.get(me)
        set_current_token(task.token)
        try:
            outcome = (
                execute(job.fn, job.kind, task.items, job.retry, measure=job.measure)
                if init_error is None
                else failed(len(task.items), init_error, ran=False, owner_loads=task.owner_loads)
            )
        finally:
            set_current_token(None)
        outcome.where = _where(me)
        task.finish(task, outcome)

    def _park(self, me: threading.Thread) -> bool:
        """Park while more threads take work than the pool may run (a resize narrowed it, or
        a wait this thread stood in for is over): decided under the lock, so a wait that
        starts meanwhile sees the count it must compensate. True: the thread leaves instead:
        the pool never ran this many (it stood in for a wait), or it shut down meanwhile."""
        with self._cond:
            if self._active() <= self.workers + self._compensation:
                return False
            if len(self._live) > self._widest:
                self._live.discard(me)
                return True
            self._parked += 1
            while not self._unparked and not self._closed:
                self._parking.wait()
            self._parked -= 1
            if self._unparked:
                self._unparked -= 1
                return False
            self._live.discard(me)
            return True

    def _take(self) -> Task | None:
        return self._queue.get()

    def _run(
        self,
        me: threading.Thread,
        task: Task,
        init_error: BaseException | None,
        where: tuple[str, str],
    ) -> bool:
        """Run one task; False if this thread was abandoned meanwhile."""
        retry = task.job.retry
        began = time.perf_counter() if task.queued else 0.0  # (task.queued: it is traced)
        if task.timeout is None:
            self._running[me] = (task, math.inf, began)  # atomic: the watchdog only reads it
        else:
            self._clock(me, task, began, True)
            item_clock.run_with(partial(self._clock, me, task, began))
        set_current_token(task.token)
        try:
            if init_error is None:
                job = task.job
                tail = Tail.of(task)
                if tail is None:
                    outcome = execute(job.fn, job.kind, task.items, retry, measure=job.measure)
                else:
                    self._tails[me] = tail
                    try:
                        outcome = execute(
                            job.fn,
                            job.kind,
                            task.items,
                            retry,
                            measure=job.measure,
                            remaining=tail.source,
                        )
                    finally:
                        self._tails.pop(me, None)
            else:
                outcome = failed(
                    len(task.items), init_error, ran=False, owner_loads=task.owner_loads
                )
        finally:
            set_current_token(None)
            if task.timeout is not None:
                item_clock.run_with(None)
        if task.timeout is None:
            # Whoever pops the entry settles the task: this thread, or terminate() giving up.
            if self._running.pop(me, None) is None:
                return False
        else:
            with self._cond:  # the watchdog may be abandoning us right now
                if me not in self._live:
                    return False
                del self._running[me]
        outcome.where = where
        self._finishing.add(me)
        try:
            task.finish(task, outcome)
        except BaseException:  # a bug in the owner's callback: report it, keep the thread
            # (Whatever it raised: a future's done-callbacks are the user's code, and a
            # SystemExit from one ended this thread silently, as the process dispatcher's.)
            import traceback  # (only here: 2.5 ms of import a map never needs otherwise)

            traceback.print_exc()
        finally:
            self._finishing.discard(me)
        return True

    def _clock(self, me: threading.Thread, task: Task, began: float, running: bool) -> None:
        """The timed task's clock starts now (``running``), or stops: it runs from the task's
        start, but not while it waits for its ``rate=`` slot (``_item_clock``). Unless the
        watchdog gave up on it meanwhile."""
        with self._cond:
            entry = self._running.get(me)
            if (entry is None or entry[0] is task) and me in self._live:
                deadline = time.monotonic() + (task.timeout or 0.0) if running else math.inf
                self._running[me] = (task, deadline, began)
                self._cond.notify_all()

    def _watch(self) -> None:
        with self._cond:
            while not (self._closed and not self._live):
                now = time.monotonic()
                for thread, (task, deadline, _) in list(self._running.items()):
                    if deadline <= now and self._running.get(thread, (None,))[0] is task:
                        self._abandon(thread, task)
                if self._closed and not self._live:
                    # _abandon let go of the lock to settle the task: the shutdown and the last
                    # thread's exit may have been signalled meanwhile, to nobody. Waiting now
                    # would wait for good (and so would the shutdown that joins us).
                    return
                deadline = min((d for _, d, _ in self._running.values()), default=math.inf)
                # Cut to what a lock's wait takes: past it the wait raised, and this thread
                # died, leaving every later task_timeout of the pool unwatched.
                self._cond.wait(None if deadline == math.inf else cut(max(0.0, deadline - now)))

    def _give_up(self, thread: threading.Thread) -> None:  # holding _cond
        self._given_up.add(thread)
        # Named so, a stack dump (py-spy, faulthandler) says which threads plait left behind.
        thread.name += " (abandoned)"

    def _abandon(self, thread: threading.Thread, task: Task) -> None:  # holding _cond
        del self._running[thread]
        self._live.discard(thread)
        self._give_up(thread)
        self.abandoned += 1
        if task.token is not None:
            task.token.cancel(CancelReason.TIMED_OUT)
        timeout = task.timeout or 0.0
        error = TaskTimeout(
            f"the item ran longer than task_timeout={timeout}s; a thread cannot be killed, so "
            f"it was abandoned ({self.abandoned} so far) and replaced; "
            "let the task check plait.cancelled() to end it",
            timeout=timeout,
        )
        retry = task.job.retry
        if retry is not None and retry.applies(error, task.attempt):
            task.attempt += 1
            task.token = task.token.renewed() if task.token is not None else None
            self._start_thread(first=task)  # the replacement runs the item again
            return
        note_attempts(error, task.attempt)
        self._start_thread(free=True)
        try:
            warn_at_function(f"plait: {thread.name}: {error}", RuntimeWarning, task.job.fn)
        except Exception:  # warnings turned into errors: nobody here could catch it
            pass
        # (It ran until its deadline, as far as anyone knows: so a trace shows it.)
        outcome = Outcome([None], {0: error}, timeout, measured=False)
        outcome.began = time.perf_counter() - timeout
        outcome.where = _where(thread)
        self._cond.release()  # finish() takes the owner's locks: never hold ours meanwhile
        try:
            task.finish(task, outcome)
        finally:
            self._cond.acquire()

    def started(self) -> bool:
        return bool(self._all)

    def blocking(self) -> AbstractContextManager[object]:
        """Around a wait, inside one of this pool's tasks, for this pool's own results (a map or
        a future of the same pool): one more thread may run meanwhile, so the work waited for
        cannot sit in the queue behind every thread's wait (a deadlock). This is the
        compensation of Java's ForkJoinPool.managedBlock; plait does not run the queued work
        inline in the waiting thread, since that thread may hold locks its own task took."""
        if threading.current_thread() not in self._live:
            return nullcontext()
        return self._compensated()

    @contextmanager
    def _compensated(self) -> Iterator[None]:
        with self._cond:
            self._compensation += 1
            self._add_thread()
        try:
            yield
        finally:
            with self._cond:
                self._compensation -= 1

    def plan(self, job: Job) -> Plan | None:
        return None  # where its work runs was chosen by the caller

    def release(self, job: Job) -> None:
        pass  # threads share the caller's memory: nothing to forget

    def shutdown(self, *, wait: bool, cancel_pending: bool) -> None:
        if not wait:
            finish_at_exit(self)  # (its threads are daemons: the program would not wait)
        self._shut(wait=wait, cancel_pending=cancel_pending)

    def _shut(self, *, wait: bool, cancel_pending: bool) -> None:
        with self._cond:
            first_call = not self._closed
            self._closed = True
            self._cond.notify_all()
            self._parking.notify_all()  # parked threads leave
        if cancel_pending:
            with self._cond:
                self._owed = 0  # the tasks they were for are dropped
            self._drop_pending()
        if first_call:
            with self._cond:
                exits = len(self._live)
            for _ in range(exits):
                self._queue.put(None)  # after the pending tasks: they still run
        if wait:
            self._wait_for_threads(None)

    def terminate(self, *, grace: bool = True) -> None:
        """Drop pending work; tell running tasks to stop, give them a moment (``grace``), then
        abandon the threads that are still busy."""
        self._shut(wait=False, cancel_pending=True)
        with self._cond:
            for task, _, _ in self._running.values():
                if task.token is not None:
                    task.token.cancel(CancelReason.TERMINATED)
        if not self._wait_for_threads(TERMINATE_GRACE if grace else 0.0):
            with self._cond:
                for thread in self._live:
                    self._give_up(thread)
                self.abandoned += len(self._live)
                self._live.clear()
                stuck = []
                with suppress(KeyError):  # popitem is atomic: a task is settled by one side
                    while True:
                        thread, (task, _, began) = self._running.popitem()
                        stuck.append((task, began, _where(thread)))
                self._cond.notify_all()
            for task, began, where in stuck:  # their results will be dropped: settle them now
                task.finish(task, given_up(task, began, where))
            self._wait_for_threads(None)

    def _wait_for_threads(self, timeout: float | None) -> bool:
        """Wait for every thread of the pool but this one: a task may shut its own pool down
        (it then returns, and its thread exits after it)."""
        me = threading.current_thread()
        with self._cond:
            if not attentive(partial(self._cond.wait_for, lambda: not self._live - {me}), timeout):
                return False
            finished = [t for t in self._all if t not in self._given_up and t is not me]
            watchdog = self._watchdog
        for thread in finished:
            thread.join()
        if watchdog is not None and watchdog is not threading.current_thread():
            watchdog.join()
        return True

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
                task.discard(task)
        for _ in range(sentinels):
            self._queue.put(None)


def _where(thread: threading.Thread) -> tuple[str, str]:
    """Where a thread of the pool runs its tasks, for a trace, as its own ``_work`` says it
    (its name without the " (abandoned)" a give-up added)."""
    return (THIS_PROCESS, f"{thread.name.removesuffix(' (abandoned)')} [{thread.native_id}]")
