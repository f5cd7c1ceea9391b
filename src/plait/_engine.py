"""The engine under ``Pool``, ``TaskGroup`` and ``plait.map``: one backend, and the two ways in.

    Pool.submit / TaskGroup.submit ──► Engine.submit_call ──► Task of one call ──► backend
    plait.map / Pool.map / amap    ──► Engine.open_map    ──► MapRun (_scheduler) ──► backend

A call travels as a one-item Task of a ``Kind.CALL`` job. On processes, calls of one function in
flight together share a job, so a worker receives the function once for a burst of submits
(only a function sent by name: ``_sent_by_name``); once a function's last call is over, nothing
of it (or its arguments) is kept. A map is
assembled here (its job, its input, its chunk sizer, its observers) and run by the scheduler's
``MapRun``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable
from types import BuiltinFunctionType, FunctionType
from typing import Any

from . import _trace
from . import _validate as check
from ._backends import Backend, create_backend
from ._cancel import CancelToken
from ._chunking import ChunkSizer
from ._cores import check_environment
from ._events import MapObserver, Observers
from ._options import MapOptions
from ._owner import Owner
from ._retry import Retry
from ._scheduler import MapRun
from ._stream import MapIterator
from ._task import Job, Kind, Outcome, Task
from ._window import open_input, sliceable_input
from ._worker_spec import Workers, as_workers


class Engine:
    """A backend, and the jobs of the calls in flight; ``retry`` applies to submitted calls."""

    def __init__(self, backend: str, spec: Workers, *, retry: Retry | None = None) -> None:
        check_environment()  # (a bad PLAIT_WORKERS: now, not once auto chose processes)
        self.backend: Backend = create_backend(backend, spec)
        self.owner = Owner()  # (in a fork of it, the engine is the parent's: _owner)
        self._retry = retry
        # On processes: the job of each function with calls in flight, and how many, so that
        # a burst of submits of one function ships it to each worker once. An entry goes with
        # its last call: a finished call leaves nothing of itself here (nor its arguments).
        self._shipped: dict[object, list[Any]] = {}  # key -> [job, calls in flight]
        self._lock = threading.Lock()

    def submit_call(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        start: Callable[[], bool],
        finish: Callable[[Task, Outcome], None],
        discard: Callable[[Task], object],
        token: CancelToken,
        timeout: float | None = None,
    ) -> None:
        """Run ``fn(*args, **kwargs)``; ``start``, ``finish`` and ``discard`` as on ``Task``."""
        self.owner.check()
        release: Callable[[], None] | None = None
        if self.backend.name != "process":  # a thread needs no job shipped: a fresh one
            job = Job(fn, Kind.CALL, self._retry)
        else:
            job, release = self._ship(fn)
            start, finish, discard = _releasing(release, start, finish, discard)
        task = Task(
            job,
            [(args, kwargs)],
            start=start,
            finish=finish,
            discard=discard,
            timeout=timeout,
            token=token,
        )
        if _trace.active:
            _trace.record(task, self.backend.name)
        try:
            self.backend.submit(task)
        except BaseException:
            if release is not None:
                release()
            raise

    def _ship(self, fn: Callable[..., Any]) -> tuple[Job, Callable[[], None]]:
        """The job for a call of ``fn``, and what to call once the call is over (once)."""
        key: object = fn if _sent_by_name(fn) else object()  # (else: a job of its own)
        with self._lock:
            entry = self._shipped.get(key)
            if entry is None:
                entry = self._shipped[key] = [Job(fn, Kind.CALL, self._retry), 0]
            entry[1] += 1
        job: Job = entry[0]
        done = False

        def release() -> None:
            nonlocal done
            with self._lock:
                if done:
                    return
                done = True
                entry[1] -= 1
                if entry[1] or self._shipped.get(key) is not entry:
                    return
                del self._shipped[key]
            self.backend.release(job)  # its workers forget the function

        return job, release

    def open_map(
        self,
        fn: Callable[..., Any],
        iterables: tuple[Iterable[Any], ...],
        options: MapOptions,
        *,
        on_close: Callable[[bool, bool], None] = lambda complete, hurried: None,
    ) -> MapIterator[Any]:
        """A lazy map of ``fn`` over ``iterables``; ``on_close(complete, hurried)`` runs when it
        ends (``hurried``: its deadline passed, or it was aborted: nothing is to be waited for)."""
        self.owner.check()
        where = options.where
        backend = self.backend
        check.check_fn(fn, where)
        check.check_fits_backend(fn, backend.name, where)
        total = check.check_iterables(iterables, where)
        job, observer = prepare_map(fn, iterables, options, backend.name, backend.workers)
        job.total = total

        def closed(complete: bool, hurried: bool) -> None:
            backend.release(job)
            try:
                on_close(complete, hurried)
            except BaseException as error:
                if options.trace is not None:
                    options.trace.map_ended(error)
                raise
            # The trace is written once the workers were released: a batch that ran as the map
            # was left is settled by then, drawn where it ran until it was given up, and one
            # that never started is a mark (written before, it lacked both).
            if options.trace is not None:
                options.trace.map_ended()

        # A timed item travels alone: a batch's deadline would not say which item overran.
        fixed = 1 if options.task_timeout is not None else options.chunksize
        sizer = ChunkSizer(
            backend.name, backend.workers, fixed=fixed, total=total, limit=backend.batch_limit
        )
        run = MapRun(
            backend,
            job,
            open_input(iterables, where),
            sizer=sizer,
            ordered=options.ordered,
            errors=options.errors,
            deadline=options.deadline,
            observer=observer,
            on_close=closed,
            total=total,
            task_timeout=options.task_timeout,
            trace=options.trace,
            owner=self.owner,
            sliceable=sliceable_input(iterables),
        )
        return MapIterator(run)

    def shutdown(self, *, wait: bool = True, cancel_pending: bool = False) -> None:
        if not self.owner.forked():  # (the owner shuts its workers down)
            self.backend.shutdown(wait=wait, cancel_pending=cancel_pending)

    def terminate(self, *, grace: bool = True) -> None:
        if not self.owner.forked():
            self.backend.terminate(grace=grace)


def _releasing(
    release: Callable[[], None],
    start: Callable[[], bool],
    finish: Callable[[Task, Outcome], None],
    discard: Callable[[Task], object],
) -> tuple[Callable[[], bool], Callable[[Task, Outcome], None], Callable[[Task], object]]:
    """The callbacks of a call's task, each also releasing its job when the call is over:
    it finished, it was dropped, or it was cancelled before it started."""

    def started() -> bool:
        if start():
            return True
        release()
        return False

    def finished(task: Task, outcome: Outcome) -> None:
        release()
        finish(task, outcome)

    def discarded(task: Task) -> object:
        release()
        return discard(task)

    return started, finished, discarded


def prepare_map(
    fn: Callable[..., Any],
    iterables: tuple[object, ...],
    options: MapOptions,
    backend: str,
    workers: int,
) -> tuple[Job, MapObserver]:
    """A map's job (its function behind the rate limit, if any) and its observers."""
    observers: list[MapObserver] = []
    if options.progress:
        from ._progress import ProgressBar

        bar = options.progress
        observers.append(ProgressBar(where=options.where, **({} if bar is True else bar)))
    if options.rate is not None:
        from ._rate import rate_limited

        fn = rate_limited(fn, options.rate, backend, workers)
    job = Job(fn, Kind.MAP if len(iterables) == 1 else Kind.STAR, options.retry)
    job.threads_only = options.rate is not None  # one bucket, shared: backend="auto" stays
    job.needs_worker = options.deadline is not None
    return job, Observers(observers)


def open_owned_map(
    fn: Callable[..., Any],
    iterables: tuple[Iterable[Any], ...],
    backend: str,
    workers: int | Workers | None,
    options: MapOptions,
) -> MapIterator[Any]:
    """A map with workers of its own (``plait.map``), started on its first result and ended
    with it: shut down when it completes, terminated when it is abandoned or fails: its
    running thread tasks are told to stop and given a moment to (``break`` then leaves none
    of its quick items running), unless the map was in a hurry (its deadline passed, or
    ``abort()``: the consumer goes on at once, and their threads are abandoned)."""
    engine = Engine(backend, as_workers(workers))

    def end(complete: bool, hurried: bool) -> None:
        if complete:
            engine.shutdown(wait=True)
        else:
            engine.terminate(grace=not hurried)

    return engine.open_map(fn, iterables, options, on_close=end)


def _sent_by_name(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` reaches a process worker by name (a function or class of a module the
    worker imports): its copy there is the module's own, whenever it was sent, so calls in
    flight together may share one. What travels by value (a callable object, a bound method,
    a closure, a lambda, what ``__main__`` defines, with the globals it uses) is as it was
    when pickled: shared, a call submitted after its state changed ran the old state while
    an earlier call was in flight. Each call of those ships its own, as ``concurrent.futures``
    does."""
    if not isinstance(fn, FunctionType | BuiltinFunctionType | type):
        return False
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or module == "__main__" or "<" in qualname:  # (<lambda>, <locals>)
        return False
    found: object = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found is fn
