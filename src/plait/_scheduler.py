"""The engine behind every map: a bounded window of batches in flight, results in order.

    consumer thread                         backend (threads, or a dispatcher + processes)
    ───────────────                         ──────────────────────────────────────────────
    next(results)
      └─ top up: read the input lazily ──► submit(Task)  ──►  worker runs execute(batch)
         while the window has room                                   │
      └─ wait for the next batch  ◄──────── finish(task, outcome) ◄──┘  (any thread)
      └─ yield its values one by one

What was read, what is out and what is ready is the ``MapWindow``'s to keep (``_window``: no
threads in it). This module drives it: the input is read only in the consumer's thread, batches
go to the backend, and a batch that finishes, in any thread, is handed to the window under this
run's condition variable, which wakes the consumer. A map that ``backend="auto"`` runs inline
skips the backend once settled: each batch is then a generator that runs its items as their
results are taken (``_lazy``), in the consumer's thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from . import _trace
from ._backends import Backend
from ._cancel import CancelToken, current_token
from ._chunking import ChunkSizer
from ._errors import Cancelled, CancelReason, PoolClosed
from ._events import MapObserver
from ._in_hand import Watch
from ._lazy import LazyBatch
from ._owner import Owner
from ._plan import INLINE_BELOW, Plan
from ._task import Job, Outcome, Task, failed, retry_item, task_error
from ._waits import SIGNAL_CHECK, cut
from ._window import READ_AT_MOST, SLOW_INPUT, SLOW_ITEM, MapWindow, Taken, instant

if TYPE_CHECKING:
    from ._backends._inline import InlineBackend

TRICKLE_WAIT = 0.005  # seconds: see MapRun._ready_soon

BATCHES_PER_WORKER = 2  # one running, one queued behind it: no worker waits for the consumer
# Items between "read" and "handed out", at most: what bounds memory when batches are large
# (tiny tasks). A process map holds them as pickles, a thread map as objects: about 2 MiB of
# small objects either way.
MAX_ITEMS_IN_FLIGHT = {"process": 65536}
DEFAULT_MAX_ITEMS_IN_FLIGHT = 16384


def max_items_in_flight(backend: str) -> int:
    return MAX_ITEMS_IN_FLIGHT.get(backend, DEFAULT_MAX_ITEMS_IN_FLIGHT)


class MapRun:
    """One map on a backend: its window, the batches it submitted, the consumer's wait."""

    def __init__(
        self,
        backend: Backend,
        job: Job,
        source: Iterator[Any],
        *,
        sizer: ChunkSizer,
        ordered: bool,
        errors: Literal["raise", "return"],
        deadline: float | None,
        observer: MapObserver,
        on_close: Callable[[bool, bool], None],
        total: int | None,
        task_timeout: float | None = None,
        trace: _trace.Trace | None = None,
        owner: Owner | None = None,
        sliceable: bool = False,
    ) -> None:
        """``sliceable``: ``source`` is plait's own iterator over a list, a tuple or a range
        (``_window.sliceable_input``)."""
        self._backend = backend
        self._owner = owner or Owner()  # in a fork of it, the map is the parent's (_owner)
        self._job = job
        self._sizer = sizer
        # Where the map runs, once the backend chose (backend="auto"); None while it measures.
        self.plan: Plan | None = None
        self._deadline = deadline
        self._observer = observer
        self._on_close = on_close
        self._total = total
        self._task_timeout = task_timeout
        self._trace = trace  # a trace of this map alone (``trace=``), besides any open one
        # Cancelled on close: running tasks can see it. Under the token of the task that made
        # the map, if one did (a TaskGroup's, another map's item): when that task is told to
        # stop, so is the map, as a nested TaskGroup is (``_parent_cancelled``).
        self._parent = current_token()
        self._token = CancelToken(self._parent)
        self._input_instant = instant(source)  # a list's, a range's: reading it never waits
        # An input that may wait is watched as it is read: what a read that waits holds is sent
        # to run meanwhile (the input may be waiting for it: a crawler's queue).
        self._in_hand = None if self._input_instant else Watch(self._send_in_hand)
        self._window: MapWindow[Task] = MapWindow(
            source,
            sizer,
            ordered=ordered,
            raise_errors=errors == "raise",
            max_batches=BATCHES_PER_WORKER * backend.workers,
            max_items=max(max_items_in_flight(backend.name), sizer.max_size),
            sliceable=sliceable,
            watch=None if self._in_hand is None else self._in_hand.reading,
        )
        # The window's results side is shared with the backend's threads: under _cond.
        self._cond = threading.Condition(threading.Lock())
        job.replanned = self._replanned
        self.with_errors = self._window.with_errors
        self._started = False
        self._complete = False  # every result was handed out: workers are idle
        # The next batch runs at once, not lazily: the last lazy one took long enough that
        # the function may have become slow, and only a batch run at once measures it alone.
        self._run_at_once = False
        self._lazy: LazyBatch | None = None  # the lazy batch being handed out, if any
        self._aborted = False  # set by abort(), from any thread
        self._aborted_for = CancelReason.ABANDONED  # what next() raises Cancelled with
        self._reading = threading.Lock()  # (between abort() and a read of the input: _take)
        self._in_input = False
        # Its deadline passed, or abort(): whatever runs is not waited for as it closes
        # (``on_close(complete, hurried)``): its consumer goes on now, as it asked.
        self._hurried = False
        self.closed = False
        # The batches out that a trace records, by ``seq``: one skipped as it was to start
        # (the map closed meanwhile) is recorded as never run, not lost (``_starts``).
        self._traced: dict[int, Task] = {}
        if trace is not None and trace.path is not None:
            _trace.write_at_exit(self)  # (weakly held: it keeps the map alive no longer)
        if self._parent is not None:
            self._parent.on_cancel(self._parent_cancelled)

    # -- consumer side ---------------------------------------------------------------------

    def next_batch(self) -> tuple[Task, Outcome] | None:
        """Top up the window, then wait for the next batch to yield (None: the map is done)."""
        self._owner.check()
        # (Checked here too, not only while waiting: a consumer slower than the workers, or an
        # input that trickles in, always finds a batch ready, and never waits.)
        if self._aborted:
            raise Cancelled(self._aborted_for, "the map")
        if not self._started:
            self._started = True
            self._observer.started(self._total)
        # Past the deadline, nothing more is read or sent; what is ready is still handed out,
        # as an Executor's map does: only a result not ready in time raises TimeoutError (in
        # the wait). A slow consumer lost results computed long before, or got a TimeoutError
        # after the last result, from a map that had finished.
        late = self._deadline is not None and time.monotonic() >= self._deadline
        # (A map that runs inline reads no more until what is out was handed out: a batch run
        # now, in this thread, would run ahead of results that wait, and an item's Ctrl-C in
        # it would be raised before them.)
        if not late and not (
            self._window.out() and self._backend.runs_inline(self._job) is not None
        ):
            self._top_up()
        with self._cond:
            entry = self._window.pop()
        if entry is None:
            with self._backend.blocking():  # a task of the same pool may be what waits here
                entry = self._wait_for_batch()
        return entry

    def lazily(self) -> Iterator[Any] | None:
        """The next batch as a generator that runs each item as its result is taken
        (``_lazy``): when the map runs inline, nothing else is out, and no trace records it.
        None: the next batch is ``next_batch``'s."""
        self._owner.check()
        if self._run_at_once:
            self._run_at_once = False
            return None
        inline = self._runs_lazily()
        if inline is None or self._window.out():
            return None
        plan = self._backend.plan(self._job)
        if plan is not None and plan is not self.plan:
            self._follow(plan)
        # (The items read so far could be run and handed out: a read that waits is enough.)
        taken = self._take(None if self._input_instant else _read_slowly, sliced=True)
        if taken is None:
            return None  # (next_batch ends the map, or raises the input's error)
        if self._window.batches_out() > 1:
            # The read waited, and what it had read was sent to run meanwhile: the rest runs
            # after it, at once, and its results are handed out after that batch's.
            self._submit(taken)
            return None
        inline.worker_state()  # (this thread's worker, set up now if it is new)
        self._lazy = LazyBatch(
            self._task_for(taken),
            inline.worker_state,  # (asked per item that asks: see _standin.StandIn)
            failed=self._failed_lazily,
            ended=self._ended_lazily,
            interrupted=self._interrupted_lazily,
        )
        return self._lazy.results

    def _runs_lazily(self) -> InlineBackend | None:
        """The inline backend, if the map's batches may run lazily (``lazily``) once nothing
        else is out."""
        if self._window.trickling or self.closed:
            return None
        if self._trace is not None or _trace.active:  # (a trace records batches run at once)
            return None
        inline = self._backend.runs_inline(self._job)
        if inline is None:
            return None
        if self._aborted:  # (inline, the consumer never waits: abort() is seen here)
            raise Cancelled(self._aborted_for, "the map")
        # (Closed: a batch goes through the backend, which refuses it: PoolClosed, noted.)
        return inline if inline.ready and not inline.closed else None

    def _failed_lazily(self, task: Task, offset: int, exc: BaseException) -> Iterator[Any]:
        """What takes the place of a lazy batch's failed item, as in a batch run at once: its
        retries, then its value, or its error noted and raised or handed out."""
        error = task_error(exc)
        job, item = task.job, task.items[offset]
        if job.retry is not None:
            value, failure, _ = retry_item(job.fn, job.kind, item, job.retry, error)
            if failure is None:
                return _handed_out([value])
            error = failure  # (Ctrl-C in a retry too: with_errors raises it, never a value)
        one = Taken(task.seq, task.first_index + offset, [item])
        return self._window.with_errors(one, Outcome([None], {0: error}))

    def _ended_lazily(self, task: Task, seconds: float) -> None:
        self._lazy = None
        with self._cond:
            if self.closed:
                return
            # (Its time is the function's and the consumer's: the sizer learns from it, so
            # that the batch run at once after a slow one, below, is no larger than it must.)
            self._window.done(task, Outcome([], elapsed=seconds))
            self._window.pop()
        self._observer.progressed(len(task.items))
        # Past this, the function alone may be too slow to run inline: the next batch runs at
        # once, and auto measures it.
        if seconds >= INLINE_BELOW * len(task.items):
            self._run_at_once = True

    def _interrupted_lazily(self, taken: int) -> None:
        self._lazy = None
        if not self.closed:
            self._observer.progressed(taken)
        self.close()

    def _wait_for_batch(self) -> tuple[Task, Outcome] | None:
        look_at: float | None = None  # when to call the backend's watch() again
        while True:
            if look_at is None or time.monotonic() >= look_at:
                due = self._backend.watch()  # (not under _cond: it may finish batches)
                look_at = None if due is None else time.monotonic() + due
            replanned = False
            with self._cond:
                while True:
                    entry = self._window.pop()
                    if entry is not None:
                        return entry
                    if self._aborted:
                        raise Cancelled(self._aborted_for, "the map")
                    if self._window.finished():
                        self._complete = True
                        return None
                    if (plan := self._backend.plan(self._job)) and plan is not self.plan:
                        replanned = True
                        break
                    if look_at is not None and time.monotonic() >= look_at:
                        break
                    self._wait(look_at)
            if replanned:
                # The backend chose a plan, or a wider one, while we waited: it has room for
                # more batches (the one we wait for may be waiting for one of them).
                self._top_up()

    def _replanned(self) -> None:
        with self._cond:
            self._cond.notify()

    def _wait(self, look_at: float | None) -> None:
        """Wait for a batch (holding _cond), until ``look_at`` (monotonic) at the latest."""
        # The main thread waits in slices: the kernel may hand a Ctrl-C to any thread of the
        # process (a worker asleep in time.sleep, say), and then nothing interrupts this wait;
        # Python runs the signal's handler in the main thread only once it runs again.
        main = threading.current_thread() is threading.main_thread()
        limits = [SIGNAL_CHECK] if main else []
        now = time.monotonic()
        if self._deadline is not None:
            remaining = self._deadline - now
            if remaining <= 0:
                self._hurried = True
                raise TimeoutError("the map did not finish within its timeout")
            limits.append(remaining)
        if look_at is not None:
            limits.append(max(0.0, look_at - now))
        self._cond.wait(cut(min(limits)) if limits else None)  # (the caller loops)

    def _top_up(self) -> None:
        plan = self._backend.plan(self._job)
        if plan is not None and plan is not self.plan:
            self._follow(plan)
        while True:
            if self._window.trickling and self._ready_soon():
                return  # (what is ready is handed out before the input is waited for again)
            if self._window.out() and self._backend.runs_inline(self._job) is not None:
                # Settled inline meanwhile (in the probe's thread): the rest runs lazily, once
                # what is out was handed out. (Read on, batches of thousands ran at once, in
                # two passes, the values handed out after: 3 % of a map of 200,000 x * 2.)
                return
            if not self._input_instant and self._backend.plan(self._job) is None:
                self._backend.input_may_block()  # (nobody looks at the probe while we read)
            began = time.perf_counter()
            taken = self._take(None if self._input_instant else self._read_waited)
            if taken is None:
                return
            took = time.perf_counter() - began
            if self._read_waited(took, len(taken.items)):
                # The input trickles in: from now on it is read an item at a time, and what
                # is ready is handed out before the input is waited for again.
                self._window.trickles()
            if not self._submit(taken):
                return
            if took >= READ_AT_MOST and self._results_wait():
                return  # (a slow input: what is ready is handed out before it is read on)

    def _submit(self, taken: Taken) -> bool:
        """Send a batch just taken to run; False if the pool was shut down under us: what is
        out is delivered, then the map says so."""
        task = self._task_for(taken)
        try:
            self._backend.submit(task)
        except PoolClosed as exc:
            self._traced.pop(taken.seq, None)  # (its items are the map's error, not a batch)
            self._window.unsent(taken, exc)
            return False
        return True

    def _send_in_hand(self) -> None:
        """From the watcher's thread (``_in_hand``), while the consumer's read of the input
        waits: send the items it read so far to run, as a batch ahead of the rest of its own.
        One that cannot be sent fails its items, as not run (the consumer may be reading: the
        window's input side is not this thread's to end)."""
        if self._aborted or self.closed:
            return
        taken = self._window.send_in_hand()
        if taken is None:
            return
        task = self._task_for(taken)
        task.elsewhere = True  # (were the map inline: not in the watcher's thread)
        try:
            self._backend.submit(task)
        except Exception as exc:  # (PoolClosed: shut down under us)
            self._finish(task, failed(len(taken.items), exc, ran=False, owner_loads=True))

    def _take(
        self, waited: Callable[[float, int], bool] | None, *, sliced: bool = False
    ) -> Taken | None:
        """``MapWindow.take``, unless the map was aborted: an abort sees whether a read of the
        input is under way (it cannot end one), and none starts after it (``abort``)."""
        with self._reading:
            if self._aborted:
                return None  # (next_batch raises Cancelled)
            self._in_input = True
        try:
            return self._window.take(waited, sliced=sliced)
        finally:
            with self._reading:
                self._in_input = False

    def _read_waited(self, seconds: float, items: int) -> bool:
        """Whether reading ``items`` of the input took long while results waited: it trickles
        in (``MapWindow.take``)."""
        return _read_slowly(seconds, items) and self._results_wait()

    def _task_for(self, taken: Taken) -> Task:
        timed = self._task_timeout is not None
        traced = bool(_trace.active) or self._trace is not None  # (never so for a lazy batch)
        task = Task(
            self._job,
            taken.items,
            start=partial(self._starts, taken.seq) if traced else self._is_open,
            finish=self._finish,
            discard=self._dropped,
            seq=taken.seq,
            first_index=taken.first_index,
            timeout=self._task_timeout,
            # (A task that can time out gets a token of its own: it is cancelled alone.)
            token=CancelToken(self._token) if timed else self._token,
            owner_loads=True,
        )
        if traced:
            task.queued = _trace.clock()  # (_finish keeps its record)
            self._traced[taken.seq] = task
        return task

    def _results_wait(self) -> bool:
        with self._cond:
            return self._window.ready()

    def _ready_soon(self) -> bool:
        """Whether a result is ready, or gets ready within TRICKLE_WAIT while batches are out:
        an input that trickles is waited for only then (quick work on the last item that came
        is then handed out before the next item, not when it comes)."""
        with self._cond:
            if not self._window.ready() and self._window.out():
                self._cond.wait(TRICKLE_WAIT)
            return self._window.ready()

    def current_plan(self) -> Plan:
        backend = self._backend
        if (plan := backend.plan(self._job)) is not None:
            return plan
        if self.plan is not None and self.closed:  # the backend forgot the job: the last plan
            return self.plan
        if backend.name == "auto":
            if self.plan is not None:  # it had one: its items changed
                return Plan("auto", backend.workers, "measuring its items again: they changed")
            return Plan("auto", backend.workers, "measuring its first items")
        return Plan(backend.name, backend.workers, f"backend={backend.name!r} was chosen")

    def _follow(self, plan: Plan) -> None:
        """The backend chose where the map runs, or how wide: size the batches and the window
        for it."""
        moved = self.plan is None or self.plan.backend != plan.backend
        self.plan = plan
        if moved:
            self._sizer.retarget(plan.backend, plan.workers)
        else:
            self._sizer.widen(plan.workers)
        self._window.set_limits(
            BATCHES_PER_WORKER * plan.workers,
            max(max_items_in_flight(plan.backend), self._sizer.max_size),
        )

    def abort(self, reason: CancelReason = CancelReason.ABANDONED) -> bool:
        """Stop from any thread, even while the consumer waits in ``next_batch`` (which then
        raises Cancelled, with ``reason``): running tasks are told to stop, and no batch starts
        after it. ``close()`` still releases the workers, from the consumer's side. Returns
        whether the consumer is in a read of the input now, which an abort cannot end (a read
        that waits ends when it does; no read starts after an abort)."""
        self._token.cancel(reason)
        self._hurried = True
        with self._reading:
            if not self._aborted:
                self._aborted_for = reason
            self._aborted = True
            reading = self._in_input
        if (lazy := self._lazy) is not None:
            lazy.stop()  # (a lazy batch's next item does not start: the consumer's next() raises)
        with self._cond:
            self._cond.notify_all()
        return reading

    def close(self) -> None:
        """Stop: batches not yet started are skipped; running ones finish and are dropped."""
        if self.closed:
            return
        self.closed = True
        if self._owner.forked():  # the parent's map: its lock may have been held at the fork
            return
        if self._trace is not None:
            _trace.written(self)
        if self._in_hand is not None:
            self._in_hand.stop()
        if self._parent is not None:
            self._parent.forget(self._parent_cancelled)  # (it holds us, for as long as it lives)
        self._token.cancel(CancelReason.ABANDONED)
        if (lazy := self._lazy) is not None:
            lazy.stop()  # (it may be running an item now, even in another thread)
        with self._cond:
            self._window.clear()
        try:
            self._on_close(self._complete, self._hurried)
        finally:
            if self._started:
                self._observer.finished()

    def close_at_exit(self) -> None:
        """The program exits with the map open, its trace to write: closed now, while the
        interpreter still runs, as abort() would have it: nothing that runs is waited for."""
        self._hurried = True
        self.close()

    def _parent_cancelled(self) -> None:
        """The task that made the map was told to stop (its group failed or was cancelled, its
        deadline passed, its own map was abandoned): the map stops, as that task's nested
        TaskGroup would; its consumer's ``next()`` raises Cancelled with the task's reason."""
        assert self._parent is not None
        self.abort(self._parent.reason)

    # -- worker side (any thread) ------------------------------------------------------------

    def _is_open(self) -> bool:
        # (Aborted, it is over but for its close: nobody takes what a batch would make, and a
        # trace shows what ran up to the abort.)
        return not (self.closed or self._aborted)

    def _starts(self, seq: int) -> bool:
        """``_is_open``, for a batch a trace records: skipped, it is recorded as never run (a
        batch that starts is recorded by ``_finish``, one dropped unstarted by ``_dropped``)."""
        if not (self.closed or self._aborted):
            return True
        task = self._traced.pop(seq, None)
        if task is not None:
            unstarted = failed(len(task.items), _abandoned, ran=False, owner_loads=True)
            _trace.keep(task, unstarted, self._backend.name, also=self._trace)
        return False

    def _dropped(self, task: Task) -> None:
        """A shutdown (``cancel_futures=True``, ``terminate()``) dropped the batch unstarted:
        its items fail with Cancelled, so the reader learns it instead of waiting for good."""
        self._finish(task, failed(len(task.items), _dropped_unstarted, ran=False, owner_loads=True))

    def _finish(self, task: Task, outcome: Outcome) -> None:
        if task.queued:
            self._traced.pop(task.seq, None)
            _trace.keep(task, outcome, self._backend.name, also=self._trace)
        with self._cond:
            if self.closed:  # nobody will read it (and the sizer dies with the map)
                return
            if self._window.done(task, outcome):  # (else the reader has nothing to wake for)
                self._cond.notify()
        self._observer.progressed(len(task.items))


def _read_slowly(seconds: float, items: int) -> bool:
    return seconds >= max(SLOW_INPUT, SLOW_ITEM * items)


def _handed_out(values: list[Any]) -> Iterator[Any]:
    """The values, each leaving the list as it is handed out (nothing else holds it then)."""
    while values:
        yield values.pop(0)


def _dropped_unstarted() -> BaseException:
    return Cancelled(CancelReason.SHUT_DOWN, "the item")


def _abandoned() -> BaseException:
    return Cancelled(CancelReason.ABANDONED, "the item")
