"""The engine under ``Pool``, ``TaskGroup`` and ``plait.map``: one backend, and the two ways in.

    Pool.submit / TaskGroup.submit ──► Engine.submit_call ──► Task of one call ──► backend
    plait.map / Pool.map / amap    ──► Engine.open_map    ──► MapRun (_scheduler) ──► backend

A call travels as a one-item Task of a ``Kind.CALL`` job; jobs are cached per function, so a
process worker receives a function once, however often it is submitted. A map is assembled here
(its job, its input, its chunk sizer, its observers) and run by the scheduler's ``MapRun``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from . import _validate as check
from ._backends import Backend, create_backend
from ._cancel import CancelToken
from ._chunking import ChunkSizer
from ._events import MapObserver, Observers
from ._options import MapOptions
from ._retry import Retry
from ._scheduler import MapIterator, MapRun
from ._task import Job, Kind, Outcome, Task
from ._window import open_input
from ._worker_spec import Workers, as_workers

JOBS_CACHED = 64  # functions a process backend keeps shipped for submit()


class Engine:
    """A backend with its job cache; ``retry`` applies to submitted calls."""

    def __init__(self, backend: str, spec: Workers, *, retry: Retry | None = None) -> None:
        self.backend: Backend = create_backend(backend, spec)
        self._retry = retry
        self._jobs: OrderedDict[Callable[..., Any], Job] = OrderedDict()

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
        task = Task(
            self._job_for(fn),
            [(args, kwargs)],
            start=start,
            finish=finish,
            discard=discard,
            timeout=timeout,
            token=token,
        )
        self.backend.submit(task)

    def _job_for(self, fn: Callable[..., Any]) -> Job:
        # Reuse the Job of a function submitted again and again; unhashable callables just get
        # a fresh Job. Evicted jobs are released: process workers forget their functions.
        try:
            job = self._jobs.pop(fn, None)
        except TypeError:
            return Job(fn, Kind.CALL, self._retry)
        if job is None:
            job = Job(fn, Kind.CALL, self._retry)
            if len(self._jobs) >= JOBS_CACHED:
                _, evicted = self._jobs.popitem(last=False)
                self.backend.release(evicted)
        self._jobs[fn] = job
        return job

    def open_map(
        self,
        fn: Callable[..., Any],
        iterables: tuple[Iterable[Any], ...],
        options: MapOptions,
        *,
        on_close: Callable[[bool], None] = lambda complete: None,
    ) -> MapIterator[Any]:
        """A lazy map of ``fn`` over ``iterables``; ``on_close(complete)`` runs when it ends."""
        where = options.where
        backend = self.backend
        check.check_fn(fn, where)
        check.check_fits_backend(fn, backend.name, where)
        total = check.check_iterables(iterables, where)
        job, observer = prepare_map(fn, iterables, options, backend.name, backend.workers)

        def closed(complete: bool) -> None:
            backend.release(job)
            on_close(complete)

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
        )
        return MapIterator(run)

    def shutdown(self, *, wait: bool = True, cancel_pending: bool = False) -> None:
        self.backend.shutdown(wait=wait, cancel_pending=cancel_pending)

    def terminate(self) -> None:
        self.backend.terminate()


def prepare_map(
    fn: Callable[..., Any],
    iterables: tuple[Iterable[Any], ...],
    options: MapOptions,
    backend: str,
    workers: int,
) -> tuple[Job, MapObserver]:
    """A map's job (its function behind the rate limit, if any) and its observers."""
    observers: list[MapObserver] = []
    if options.progress:
        from ._progress import ProgressBar

        observers.append(ProgressBar())
    if options.rate is not None:
        from ._rate import rate_limited

        fn = rate_limited(fn, options.rate, backend, workers)
    return Job(fn, Kind.MAP if len(iterables) == 1 else Kind.STAR, options.retry), Observers(
        observers
    )


def open_owned_map(
    fn: Callable[..., Any],
    iterables: tuple[Iterable[Any], ...],
    backend: str,
    workers: int | Workers | None,
    options: MapOptions,
) -> MapIterator[Any]:
    """A map with workers of its own (``plait.map``), started on its first result and ended
    with it: shut down when it completes, terminated when it is abandoned or fails."""
    engine = Engine(backend, as_workers(workers))

    def end(complete: bool) -> None:
        if complete:
            engine.shutdown(wait=True)
        else:
            engine.terminate()

    return engine.open_map(fn, iterables, options, on_close=end)
