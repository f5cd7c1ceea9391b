"""backend="auto": measure a map's first batches, then run the rest where it pays.

Each job (a map's function) gets a route. While the route probes, the job's batches run one at
a time on a thread, each measuring its wall and CPU time; then, if the work computes and is not
tiny, two at once on two threads, to see whether each keeps computing (the work releases the
GIL) or they take turns (what they measured: ``_probe``). ``_plan.decide`` turns the
measurements into a plan, and every later batch of the job goes where the plan says: threads,
a process pool, or inline. Batches already
sent finish where they are; the scheduler's window puts every result in its place, so moving
costs no item, repeats none and reorders none.

The probe runs on a thread, never in the consumer's: the consumer stays free to take results,
give up on the map, or keep its deadline while an item runs, exactly as on threads. And a probe
batch never holds the map up: any batch still running after ``WATCH_AFTER`` seconds is looked
at (``_watched``), and if its thread has been waiting rather than computing (an item that
downloads for seconds, or waits for another item, as at a barrier), the work waits: the plan is
threads, made at once, and the batches behind it start. Who looks: the consumer, while it waits
for results (``watch``); and a watcher thread, once a probe batch ran a millisecond or more
(``WATCH_QUICK``: a map of tiny items is spared the thread; one of those that then blocks while
its consumer is busy elsewhere is looked at when the consumer comes to wait).

Calls (``Pool.submit``, TaskGroup) run on threads: one call says too little to probe.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from contextlib import AbstractContextManager, suppress
from dataclasses import replace
from typing import Any

from .._cores import process_workers, usable_cores
from .._errors import PoolClosed
from .._plan import (
    INLINE_BELOW,
    Plan,
    Situation,
    decide,
    needs_parallel_probe,
    tiny_plan,
    waiting_plan,
)
from .._task import Job, Kind, Outcome, Task, failed
from .._width import MAXIMUM, Width
from .._worker_spec import Workers
from . import _watched
from ._base import Backend, default_workers
from ._inline import InlineBackend
from ._probe import Probe, median
from ._thread import ThreadBackend
from ._together import THREADS as PROBE_THREADS
from ._watched import Waits, Watched, judge
from .process._limits import most_workers

INFO, DEBUG = 20, 10  # logging's levels (logging is not imported here: see _log)

# Who looks: the consumer, while it waits for results (``watch``); and, once a probe batch ran
# this long (the next may run long while the consumer is busy elsewhere), a watcher thread.
# Work whose first batches all end sooner (tiny work) is spared the thread; a batch that then
# runs long while nobody waits is looked at when the consumer comes to wait.
WATCH_QUICK = 0.001
# After the plan, the batches' time per item keeps being watched, over the last RECENT batches:
# inline work that became this slow an item, or work on processes that became too small to
# ship, is measured again and its plan made anew, at most REDECIDE times a map.
RECENT = 16
INLINE_TURNS_SLOW = 20 * INLINE_BELOW
REDECIDE = 3


class _Route:
    """One job's probe, then its plan and the backend that carries it out."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.plan: Plan | None = None
        self.target: Backend | _Refused | None = None
        self.waiting: deque[Task] = deque()  # submitted during the probe, not yet started
        self.running = 0
        # A task had a task_timeout, or its map a timeout: never inline (the item could not be
        # given up on, or the consumer could not keep the map's deadline while it ran it).
        self.timed = False
        self.alone = False  # a task had a task_timeout: each item is a task of its own
        self.width: Width | None = None  # the adaptive width of waiting work on threads
        self.watched: dict[int, Watched] = {}  # id(task) -> its probe batch, while it runs
        self.settled = 0  # plans made so far: a batch sent under an older one says nothing new
        self.recent: deque[tuple[int, float]] = deque(maxlen=RECENT)  # (items, seconds)
        # Whether the function and the first items pickle, once a plan wants processes: found
        # out by the thread that decides, without holding auto's lock (a __reduce__ is the
        # user's code, and may use this very pool), while ``checking``.
        self.travels: tuple[bool, str] | None = None
        self.checking = False
        self.probe = Probe()  # what the job's batches measured, until its plan is made

    def new_probe(self) -> None:
        """Forget what the last probe measured: the work changed, it is measured again."""
        self.probe = Probe()
        self.travels = None  # (of its first items then: those now may be others)


class AutoBackend:
    name = "auto"
    batch_limit: int | None = None

    def __init__(self, spec: Workers) -> None:
        self.spec = spec
        # (max_count is ours to apply: the backends we run on get a count.)
        self._threads = ThreadBackend(
            replace(spec, count=spec.count or PROBE_THREADS, max_count=None)
        )
        self.workers = self._threads.workers
        self._processes: Backend | None = None
        self._inline = InlineBackend(spec)
        self._routes: dict[int, _Route] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified when a probe has nothing left
        self._watching = threading.Condition(self._lock)  # notified when a probe batch starts
        # ... unless the watcher looks before that batch is due anyway: perf_counter() when
        # it wakes next (waking it for each batch kept the probe's thread from the GIL)
        self._watcher_wakes = 0.0
        self._watcher: threading.Thread | None = None
        self._resizing = threading.Lock()  # (taken before _lock, never while holding it)
        self._closed = False
        self._dropping = False  # a shutdown drops what has not started (or a terminate)
        # Per thread, the batches it took from a route's waiting and has not yet sent on: a
        # shutdown waits for them (another thread's) to reach a backend before it closes them.
        self._starting: Counter[int] = Counter()
        # Calls (Pool.submit, TaskGroup) came: the threads are at least as many as they need.
        # (Calls keep no route: a call is a job of its own, and one route a call, never
        # released, held each call's function and arguments for as long as the pool lived.)
        self._calls = False

    # -- the Backend protocol ----------------------------------------------------------------

    def submit(self, task: Task) -> None:
        if task.job.kind is Kind.CALL:
            self._submit_call(task)
            return
        route = self._routes.get(task.job.id)
        if route is not None and route.target is not None:  # settled: no lock needed
            self._send(route, task)  # (closed meanwhile: the target refuses it, PoolClosed)
        else:
            self._enqueue(task)

    def _submit_call(self, task: Task) -> None:
        """A call runs on threads: one call says too little to measure. (Calls submitted one
        by one, often waiting, on downloads or on each other, are not to queue behind two
        threads: the threads are as many as ``backend="thread"`` has.)"""
        with self._lock:
            if self._closed:
                raise PoolClosed("cannot submit work: the pool is shut down")
            first, self._calls = not self._calls, True
        if first:
            _log(DEBUG, "plait: calls run on threads: a single call says too little to measure")
            self._size_threads()
        self._threads.submit(task)

    def _enqueue(self, task: Task) -> None:
        """Submit ``task`` under the lock: to its route's probe, or where its plan says."""
        with self._lock:
            if self._closed:
                raise PoolClosed("cannot submit work: the pool is shut down")
            route = self._route(task.job)
            route.timed |= task.timeout is not None or task.job.needs_worker
            route.alone |= task.timeout is not None
            target = route.target
            if target is None:
                route.waiting.append(task)
                starting = self._next_probes(route)
        if target is not None:
            plan = route.plan
            if route.target is self._threads and plan and plan.workers > self._threads.workers:
                self._size_threads()  # (a call, or a map with rate=: settled just now)
            self._send(route, task)
        else:
            self._start_probes(route, starting)

    def plan(self, job: Job) -> Plan | None:
        route = self._routes.get(job.id)
        return None if route is None else route.plan

    def runs_inline(self, job: Job) -> InlineBackend | None:
        route = self._routes.get(job.id)
        return self._inline if route is not None and route.target is self._inline else None

    def release(self, job: Job) -> None:
        with self._lock:
            self._routes.pop(job.id, None)
        for backend in self._backends():
            backend.release(job)

    def shutdown(self, *, wait: bool, cancel_pending: bool) -> None:
        with self._lock:
            self._closed = True
            self._dropping |= cancel_pending
            dropped = self._drop_waiting() if cancel_pending else []
            # A probe still measuring ends here: the batches that waited for its plan go to
            # threads now, the safe choice, rather than after the probe's running batch,
            # which may be waiting for one of them (an item that waits for a later one).
            settled = [
                (route, *self._settle_unmeasured(route))
                for route in self._routes.values()
                if route.plan is None
            ]
        self._apply(settled)
        me = threading.get_ident()  # (a shutdown from a thread of ours: see _hand_on)
        with self._lock:
            while any(n for thread, n in self._starting.items() if thread != me):
                self._idle.wait()  # not long: no item runs meanwhile
        self._stop_watcher()
        for task in dropped:
            task.discard(task)
        for backend in self._backends():
            backend.shutdown(wait=wait, cancel_pending=cancel_pending)

    def terminate(self, *, grace: bool = True) -> None:
        with self._lock:
            self._closed = self._dropping = True
            dropped = self._drop_waiting()
        self._stop_watcher()
        for task in dropped:
            task.discard(task)
        for backend in self._backends():
            backend.terminate(grace=grace)

    def started(self) -> bool:
        return any(backend.started() for backend in self._backends())

    def blocking(self) -> AbstractContextManager[object]:
        return self._threads.blocking()

    # -- the probe ---------------------------------------------------------------------------

    def _route(self, job: Job) -> _Route:
        route = self._routes.get(job.id)
        if route is None:
            route = self._routes[job.id] = _Route(job)
            if job.threads_only:
                why = "rate= makes its calls wait for their slots: work that waits, for threads"
                self._settle(route, Plan("thread", self._thread_width(), why))
            else:
                job.measure = True
        return route

    def _next_probes(self, route: _Route) -> list[Task]:
        """The waiting tasks to start now (holding the lock): one at a time, then two."""
        starting: list[Task] = []
        probe = route.probe
        while route.waiting and (
            probe.started_together < PROBE_THREADS if probe.together else route.running == 0
        ):
            task = route.waiting.popleft()
            route.running += 1
            if probe.together:
                probe.started_together += 1
                task.start = probe.round.start(id(task), task.start)
            probe.probed += len(task.items)
            if probe.sample is None:
                probe.sample = list(task.items[:1])
            starting.append(task)
        self._starting[threading.get_ident()] += len(starting)  # (see _start_probes)
        return starting

    def _start_probes(self, route: _Route, tasks: list[Task], *, here: bool = False) -> None:
        """Send the probe's next batches to its threads. ``here``: from a probe thread, as it
        finishes its batch: the first of them is that thread's next (see ``submit_next``)."""
        submit = self._threads.submit_next if here else self._threads.submit
        left = len(tasks)  # not yet submitted (or refused): a shutdown waits for them
        try:
            for task in tasks:
                start, finish = task.start, task.finish
                task.start = lambda task=task, start=start: self._watch(route, task, start)  # type: ignore[misc]
                task.finish = lambda task, outcome, finish=finish: self._probed(  # type: ignore[misc]
                    route, task, outcome, finish
                )
                try:
                    submit(task)
                except PoolClosed:  # (terminate() does not wait for them)
                    task.finish = finish
                    task.discard(task)
                    with self._lock:
                        route.running -= 1
                left -= 1
        finally:
            with self._lock:
                route.running -= left  # (an error in the submit itself: they never start)
                self._sent(len(tasks))

    def _watch(self, route: _Route, task: Task, start: Callable[[], bool]) -> bool:
        """A probe batch starts on its thread: from now on the watcher looks at it."""
        if not start():
            return False
        watched = Watched(task)  # (reads its clocks: not while holding the lock)
        with self._lock:
            route.watched[id(task)] = watched
            if self._watcher_wakes > watched.since + _watched.WATCH_AFTER:
                self._watching.notify_all()
        return True

    def watch(self) -> float | None:
        """A consumer waits for results: look at the probe batches running now, as the
        watcher thread would. While a consumer waits, the probe needs no watcher thread (its
        start costs a map of tiny items a tenth of its time). Returns the seconds until the
        next look is due; None once no job probes."""
        with self._lock:
            if self._closed:
                return None
            settled, due = self._look(time.perf_counter())
        self._apply(settled)
        split_due = self._threads.watch()  # (batches on threads: their rest may move)
        if due is None or split_due is None:
            return due if split_due is None else split_due
        return min(due, split_due)

    def input_may_block(self) -> None:
        """The consumer reads an input that may wait (for the next item, or for an item of
        this map to run first, as a crawler's queue does): it cannot look at a probe batch
        meanwhile, so the watcher thread does."""
        with self._lock:
            if any(route.plan is None for route in self._routes.values()):
                self._ensure_watcher()

    def _ensure_watcher(self) -> None:
        """Start the watcher thread, if it is not running (holding the lock): a probe batch may
        now run long while nobody waits for its results to look at it."""
        if self._watcher is None and not self._closed:
            self._watcher = threading.Thread(
                target=self._watch_probes, name="plait-auto-watcher", daemon=True
            )
            self._watcher.start()

    def _watch_probes(self) -> None:
        """The watcher's thread: settle, as waiting work, any route whose probe batch has run
        ``WATCH_AFTER`` seconds waiting. It ends when no route probes any more."""
        with self._lock:
            while not self._closed and any(r.plan is None for r in self._routes.values()):
                settled, due = self._look(time.perf_counter())
                if settled:
                    self._lock.release()  # (the batches go to threads: no lock of ours held)
                    try:
                        self._apply(settled)
                    finally:
                        self._lock.acquire()
                    continue
                self._watcher_wakes = math.inf if due is None else time.perf_counter() + due
                self._watching.wait(due)
                self._watcher_wakes = 0.0
            self._watcher = None

    def _look(self, now: float) -> tuple[list[tuple[_Route, Plan, list[Task]]], float | None]:
        """Settle, as waiting work, each route whose probe batches have all run
        ``WATCH_AFTER`` seconds waiting (``_watched.judge``; holding the lock); return them, for
        ``_apply`` once the lock is let go of, and the seconds until the next look is due (None:
        no route probes; WATCH_AFTER while a route probes but runs no batch: one may start
        meanwhile)."""
        settled: list[tuple[_Route, Plan, list[Task]]] = []
        probing = False
        due: list[float] = []  # when to look at each probing route's batches again
        for route in self._routes.values():
            if route.plan is not None:
                continue
            probing = True
            if not route.watched:
                continue
            verdict = judge(list(route.watched.values()), now)
            if isinstance(verdict, Waits):
                settled.append(self._settle_waiting(route, verdict.share, verdict.running))
            else:
                due.append(verdict)
        if settled:
            return settled, 0.0
        if due:
            return [], max(0.0, min(due) - now)
        return [], _watched.WATCH_AFTER if probing else None

    def _apply(self, settled: list[tuple[_Route, Plan, list[Task]]]) -> None:
        """Send on what waited for the routes ``_look`` settled (not holding the lock)."""
        for route, plan, waiting in settled:
            _log(INFO, "plait: %s runs %s", _name(route.job.fn), plan)
            self._size_threads()
            self._hand_on(route, waiting)
            route.job.replanned()

    def _settle_waiting(
        self, route: _Route, share: float | None, running: float
    ) -> tuple[_Route, Plan, list[Task]]:
        """Settle ``route`` on threads, its probe batches still running and waiting (holding
        the lock); return the route, its plan and the tasks that waited for it."""
        plan = waiting_plan(share, running)
        waiting = self._settle(route, plan)
        self._idle.notify_all()
        return route, plan, waiting

    def _thread_width(self) -> int:
        """Threads for work not measured (calls, a map with rate=, a probe a shutdown ended):
        as many as backend="thread" has, within the caller's ceiling (``max_count``)."""
        return self.spec.count or min(default_workers("thread"), self.spec.max_count or MAXIMUM)

    def _settle_unmeasured(self, route: _Route) -> tuple[Plan, list[Task]]:
        """Settle ``route`` on threads before its probe measured enough (holding the lock):
        the pool shuts down. Return its plan and the tasks that waited for it."""
        plan = Plan(
            "thread",
            self._thread_width(),
            "the pool shut down before its first items were measured: threads, which run any work",
        )
        return plan, self._settle(route, plan)

    def _sent(self, count: int) -> None:
        """This thread sent on ``count`` batches it took from a route's waiting (holding the
        lock)."""
        me = threading.get_ident()
        self._starting[me] -= count
        if not self._starting[me]:
            del self._starting[me]
        self._idle.notify_all()

    def _stop_watcher(self) -> None:
        with self._lock:
            watcher = self._watcher
            self._watching.notify_all()
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join()

    def _probed(
        self,
        route: _Route,
        task: Task,
        outcome: Outcome,
        finish: Callable[[Task, Outcome], None],
    ) -> None:
        """A probe batch ended (in a worker thread): learn from it, hand it on, go on."""
        together = route.probe.round if route.probe.together else None
        if together is not None and together.has(id(task)):
            together.ended(id(task))  # (first thing: the overlap may end here)
        task.finish = finish
        plan: Plan | None = None
        starting: list[Task] = []
        waiting: list[Task] = []
        check = False  # the plan waits for _check_travels, made outside the lock
        with self._lock:
            route.running -= 1
            watched = route.watched.pop(id(task), None)
            if together is not None:
                for other in route.watched.values():
                    other.alone_from_now()
            if route.plan is None:  # (else the watcher settled the route while this ran)
                was_checking = route.checking
                try:
                    route.probe.learn(outcome, watched)
                    plan = self._decide(route)
                    if plan is not None:
                        waiting = self._settle(route, plan)
                    elif outcome.elapsed >= WATCH_QUICK:
                        self._ensure_watcher()
                except BaseException as exc:  # (escaping, it left the map waiting for good)
                    plan, waiting = self._refuse(route, exc)
                check = plan is None and route.checking and not was_checking
                if plan is None and not check:
                    starting = self._next_probes(route)
            self._idle.notify_all()
        try:
            finish(task, outcome)
        finally:  # (what waited, or the probe's next batches, go on whatever happened)
            if plan is not None:
                self._carry_out(route, plan, waiting)
            elif check:
                self._check_travels(route)
            else:
                self._start_probes(route, starting, here=True)

    def _carry_out(self, route: _Route, plan: Plan, waiting: list[Task]) -> None:
        """The route was just settled on ``plan``: send on what waited for it."""
        _log(INFO, "plait: %s runs %s", _name(route.job.fn), plan)
        if route.target is self._threads:
            self._size_threads()
        self._hand_on(route, waiting)
        route.job.replanned()

    def _check_travels(self, route: _Route) -> None:
        """Find out whether the route's function and first items pickle, the plan's last
        question before processes, then make the plan (``_decide``). Not holding the lock:
        pickling runs the user's ``__reduce__``, which may take long, or submit to this very
        pool (it waited for good for the lock its own thread held)."""
        try:
            sample = route.probe.sample or []
            travels: tuple[bool, str] | BaseException = _travels(route.job, sample)
        except BaseException as exc:  # (Ctrl-C, or what looks like it: raised in the map)
            travels = exc
        plan: Plan | None = None
        waiting: list[Task] = []
        starting: list[Task] = []
        with self._lock:
            route.checking = False
            if route.plan is not None:  # settled meanwhile: shut down, or its batch waited
                return
            try:
                if isinstance(travels, BaseException):
                    raise travels
                route.travels = travels
                plan = self._decide(route)
                if plan is not None:
                    waiting = self._settle(route, plan)
            except BaseException as exc:
                plan, waiting = self._refuse(route, exc)
            if plan is None:
                starting = self._next_probes(route)
        if plan is not None:
            self._carry_out(route, plan, waiting)
        else:
            self._start_probes(route, starting)

    def _refuse(self, route: _Route, error: BaseException) -> tuple[Plan, list[Task]]:
        """Settle ``route`` on failure (holding the lock): making its plan raised ``error`` (a
        bug of plait's; an environment changed mid-map). The batches that ran keep their
        results; every later one fails, unrun, with ``error``, so that the map ends with it.
        Return the plan and the tasks that waited for it."""
        with suppress(BaseException):  # (an exception's __notes__ may be anything)
            error.add_note(
                'plait: backend="auto" failed as it chose where this map runs; '
                "its items not yet run fail with this error"
            )
        plan = Plan(
            "thread",
            self._threads.workers,
            f"choosing where it runs failed ({type(error).__name__}): the items not yet run "
            "fail with that error",
        )
        waiting = self._settle(route, plan)
        route.target = _Refused(error)
        return plan, waiting

    def _decide(self, route: _Route) -> Plan | None:
        """The plan, once the probe has measured enough (holding the lock)."""
        probe = route.probe
        if probe.failed_throughout():
            return Plan(
                "thread",
                self._threads.workers,
                f"its first {probe.batches} batches all failed before they could be measured",
            )
        measured = probe.measured()
        if measured is None:
            return None
        tiny = tiny_plan(measured, can_inline=not route.timed, alone=route.alone)
        if tiny is not None:
            return tiny
        situation = self._situation(route)
        if needs_parallel_probe(measured, situation) and self._threads.workers >= PROBE_THREADS:
            if not probe.together:
                probe.together = True
                _prepare_processes(self.spec)  # while no thread of ours runs yet, if none does
                return None
            if not probe.rounds_over():
                return None
            measured = replace(measured, parallel=probe.overlap)
        plan = decide(measured, situation)
        if plan.backend == "process":  # only now is it worth finding out (pickling)
            if route.travels is None:
                route.checking = True  # (by the caller, once it let go of the lock)
                return None
            travels, why_not = route.travels
            plan = decide(measured, replace(situation, travels=travels, why_not=why_not))
        return plan

    def _situation(self, route: _Route) -> Situation:
        return Situation(
            cores=usable_cores(),
            gil=getattr(sys, "_is_gil_enabled", lambda: True)(),
            travels=True,
            process_workers=self.spec.count or process_workers(),
            can_inline=not route.timed,
            items_travel_alone=route.alone,
            remaining=None if route.job.total is None else route.job.total - route.probe.probed,
        )

    def _settle(self, route: _Route, plan: Plan) -> list[Task]:
        """Carry out ``plan`` for the route's job (holding the lock); return the tasks that
        waited for it, for the caller to send on once it let go of the lock."""
        if self.spec.count is not None:  # the caller's width always wins
            plan = replace(plan, workers=self.spec.count, adaptive=False)
        if plan.backend == "process":  # (but processes as many as this process can hold)
            plan = _within_open_files(plan)
        if plan.adaptive:
            route.width = Width(
                time.perf_counter(),
                latency=median(route.probe.per_item) if route.probe.per_item else 0.0,
                start=plan.workers,
                maximum=self.spec.max_count or MAXIMUM,
            )
            plan = replace(plan, workers=route.width.limit)
        route.job.measure = False
        route.plan = plan
        route.settled += 1
        if plan.backend == "process":
            if self._processes is None:
                from .process._dispatcher import ProcessBackend

                self._processes = ProcessBackend(
                    replace(self.spec, count=plan.workers, max_count=None)
                )
            route.target = self._processes
        elif plan.backend == "inline":
            route.target = self._inline
        else:
            route.target = self._threads
        # (The caller sizes the threads, _size_threads, once it let go of the lock.)
        waiting = list(route.waiting)
        route.waiting.clear()
        self._starting[threading.get_ident()] += len(waiting)  # (see _hand_on)
        return waiting

    def _size_threads(self) -> None:
        """As many threads as the widest job on them needs: an adaptive width's present limit
        (its plan says the limit it holds, see ``Width.held``). Read and applied under a lock
        of its own, so that two resizes cannot apply their counts out of order."""
        with self._resizing:
            with self._lock:
                routes = list(self._routes.values())
            widths = [
                r.plan.workers
                for r in routes
                if r.target is self._threads and r.plan and not r.width
            ]
            widths += [r.width.limit for r in routes if r.width]
            if self._calls:
                widths.append(self._thread_width())
            self._threads.resize(max([self.spec.count or PROBE_THREADS, *widths]))
            self.workers = self._threads.workers

    def _hand_on(self, route: _Route, tasks: list[Task]) -> None:
        """Send the tasks that waited during the probe where the plan says. Settled inline,
        they run here, in the probe's thread that made the plan, one after another, as the
        thread worker it is (``ThreadBackend.run_here``): not as the inline worker, which is
        the thread that reads the map's results (set up here, its worker_state() and
        initializer were in a thread its later items never ran in, and raced them). A
        shutdown does not wait for them (with wait=True, it waits for this thread), and one
        that drops what has not started drops them."""
        if route.target is self._inline:
            with self._lock:
                self._sent(len(tasks))
                self._idle.notify_all()
            for task in tasks:
                if self._dropping:
                    task.discard(task)
                else:
                    self._threads.run_here(task)
            return
        try:
            for task in tasks:
                try:
                    self._send(route, task)
                except PoolClosed:
                    task.discard(task)
        finally:
            with self._lock:
                self._sent(len(tasks))
                self._idle.notify_all()

    def _send(self, route: _Route, task: Task) -> None:
        """Submit ``task`` where its route's plan says; with an adaptive width, its run is
        measured. Inline, it runs in this thread, unless it may not run in the thread that
        submits it (``Task.elsewhere``: then on threads)."""
        target, width, settled = route.target, route.width, route.settled
        if target is None:  # measuring again since the caller looked: the task joins the probe
            self._enqueue(task)
            return
        if target is self._inline and task.elsewhere:
            target = self._threads
        if width is not None or route.settled <= REDECIDE:
            start, finish = task.start, task.finish
            delivered = [0]

            def started() -> bool:
                if width is not None:
                    delivered[0] = width.delivered  # (an int read: atomic)
                return start()

            def measured(task: Task, outcome: Outcome) -> None:
                self._measured(route, settled, task, outcome, delivered[0], finish)

            task.start, task.finish = started, measured
        if target is self._processes:
            finish_on_process = task.finish
            task.finish = lambda task, outcome: self._travelled(task, outcome, finish_on_process)
        target.submit(task)

    def _travelled(
        self, task: Task, outcome: Outcome, finish: Callable[[Task, Outcome], None]
    ) -> None:
        """A batch sent to processes ended. The plan was made on a sample of the items: those
        that would not pickle (a later item holding a lock, say) never ran, and run on threads
        now, as they would have had the plan been threads, their results put in their places
        before the batch's results go on. (Not results that would not pickle back: their items
        ran, and must not run twice.)"""
        if not outcome.unsent:
            finish(task, outcome)
            return
        offsets = outcome.unsent

        def ran_here(rest: Task, ran: Outcome) -> None:
            for position, offset in enumerate(offsets):
                outcome.values[offset] = ran.values[position]
                if position in ran.errors:
                    outcome.errors[offset] = ran.errors[position]
                else:
                    outcome.errors.pop(offset, None)
            outcome.unsent = ()
            finish(task, outcome)

        rest = Task(
            task.job,
            [task.items[offset] for offset in offsets],
            start=lambda: True,  # (it must run, or be discarded: the batch's finish waits)
            finish=ran_here,
            discard=lambda rest: finish(task, outcome),  # (a shutdown dropped it: as it was)
            timeout=task.timeout,
            token=task.token,
            attempt=task.attempt,
            seq=task.seq,
            first_index=task.first_index,
        )
        try:
            self._threads.submit(rest)
        except PoolClosed:
            finish(task, outcome)

    def _measured(
        self,
        route: _Route,
        settled: int,
        task: Task,
        outcome: Outcome,
        delivered: int,
        finish: Callable[[Task, Outcome], None],
    ) -> None:
        """A batch sent under plan number ``settled`` ended: the work may have changed (then
        it is measured again), and the throughput and latency of waiting work may change its
        width."""
        task.finish = finish
        changed = again = False
        try:
            with self._lock:
                width, plan = route.width, route.plan
                # (Sent under an older plan, or measuring again: nothing to learn from it.)
                current = plan is not None and settled == route.settled
                again = current and self._work_changed(route, task, outcome)
                if again:
                    self._measure_again(route)
                elif current:
                    changed = width is not None and width.finished(
                        time.perf_counter(),
                        began=outcome.began,
                        items=len(task.items),
                        elapsed=outcome.elapsed,
                        errors=len(outcome.errors),
                        delivered=delivered,
                    )
                if changed and width is not None and plan is not None:
                    route.plan = replace(plan, workers=width.held)
        finally:  # the batch's results reach their owner, whatever happened here
            finish(task, outcome)
        if again:
            _log(INFO, "plait: %s measures again: its items changed", _name(route.job.fn))
            route.job.replanned()
        if changed and width is not None:
            self._size_threads()
            route.job.replanned()
            _log(
                DEBUG,
                "plait: %s on %d threads (%s; %.1f ms an item)",
                _name(route.job.fn),
                width.limit,
                width.state,
                width.latency * 1e3,
            )

    def _work_changed(self, route: _Route, task: Task, outcome: Outcome) -> bool:
        """Whether the route's last RECENT batches no longer fit its plan (holding the lock):
        inline work that turned slow, or work on processes that turned tiny."""
        plan = route.plan
        if plan is None or route.settled > REDECIDE or not outcome.measured or not task.items:
            return False
        route.recent.append((len(task.items), outcome.elapsed))
        if len(route.recent) < RECENT:
            return False
        # The median batch's: a large batch read before the work changed must not outweigh
        # the small ones after it (an average weighed by items hid the change when a few fast
        # batches of 4,096 items stood beside the slow ones), nor one pause a batch met count.
        per_item = median([seconds / items for items, seconds in route.recent])
        if plan.backend == "inline":
            return per_item >= INLINE_TURNS_SLOW
        if plan.backend == "process":
            return per_item < INLINE_BELOW and not route.timed
        return False

    def _measure_again(self, route: _Route) -> None:
        """Probe the route's job anew (holding the lock): batches sent meanwhile wait for the
        new plan; those already out finish where they are, and the scheduler's window puts
        their results in place."""
        route.plan = route.target = route.width = None
        route.recent.clear()
        route.new_probe()
        route.job.measure = True

    def _drop_waiting(self) -> list[Task]:
        dropped = [task for route in self._routes.values() for task in route.waiting]
        for route in self._routes.values():
            route.waiting.clear()
        return dropped

    def _backends(self) -> list[Backend]:
        backends: list[Backend] = [self._threads, self._inline]
        if self._processes is not None:
            backends.append(self._processes)
        return backends


class _Refused:
    """Where the batches of a job go whose plan could not be made (``_refuse``): each fails,
    unrun, with the error that making it raised."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def submit(self, task: Task) -> None:
        if task.start():
            outcome = failed(len(task.items), self.error, ran=False, owner_loads=task.owner_loads)
            task.finish(task, outcome)


def _prepare_processes(spec: Workers) -> None:
    """Make the process template now, in case the plan turns out to be processes: forked from
    this program if it is still single-threaded (cheap), otherwise started fresh."""
    from .process._launch import prepare

    prepare(spec.start_method or "forkserver")


def _within_open_files(plan: Plan) -> Plan:
    """A process plan with no more workers than the open-file limit holds (``_limits``): a
    width auto picks, or ``workers=`` (which also sizes the threads it may pick instead) past
    it, is cut there rather than refused, with the plan saying so."""
    most = most_workers()
    if plan.workers <= most:
        return plan
    why = f"; {most} processes, as many as the open-file limit holds (ulimit -n)"
    return replace(plan, workers=most, reason=plan.reason + why)


def _travels(job: Job, sample: list[Any]) -> tuple[bool, str]:
    """Whether the job's function and a sample of its items pickle for a worker process."""
    from .process._codec import encode_function, encode_items, might_be_ctrl_c

    # (A __reduce__ is the user's code, and may raise anything: SystemExit, a BaseException of
    # its own. Escaping, it left the map waiting for good: it is pickling trouble as any other.)
    try:
        encode_function(job)
    except BaseException as exc:
        if might_be_ctrl_c(exc):
            raise
        return False, f"the function would not pickle ({_described(exc)})"
    try:
        encode_items(sample)
    except BaseException as exc:
        if might_be_ctrl_c(exc):
            raise
        return False, f"its items would not pickle ({_described(exc)})"
    return True, ""


def _described(exc: BaseException) -> str:
    """``Type: message``, or the type alone if its ``str()`` fails (it is the user's code)."""
    try:
        return f"{type(exc).__name__}: {exc}"
    except BaseException:
        return type(exc).__name__


def _log(level: int, message: str, *args: object) -> None:
    """Log to ``logging.getLogger("plait")``, if the program uses logging at all. One that never
    imported it has no handler that would show the record (logging's last resort shows
    warnings and worse only), and importing it would cost the first map 9 ms."""
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.getLogger("plait").log(level, message, *args)


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)
