"""Pool: a context manager that owns one backend's workers, reusable for many maps.

It is a real ``concurrent.futures.Executor``: ``submit`` returns a standard Future, ``map``
keeps the Executor's meaning of ``timeout`` (a deadline for the whole map) and ``shutdown``
its semantics. ``map`` is lazy, unlike the Executor's, which reads all of its input at once.
"""

from __future__ import annotations

import time
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, ParamSpec, TypeVar, overload

from . import _validate as check
from ._backends import Backend, create_backend
from ._cancel import CancelToken
from ._chunking import ChunkSizer
from ._errors import PoolClosed
from ._events import MapObserver, Observers
from ._retry import Retry, as_retry
from ._scheduler import MapIterator, MapRun, open_input
from ._task import Job, Kind, Outcome, Task
from ._workers import Workers, as_workers

R = TypeVar("R")
P = ParamSpec("P")

_SUBMIT_JOBS_CACHED = 64  # functions a process pool keeps shipped for submit()


class Pool(Executor):
    """Workers of one backend (``"thread"`` or ``"process"``), started on first use.

    ``workers`` is a count, or a ``plait.Workers`` for an initializer, recycling and the start
    method. ``task_timeout`` and ``retries`` apply to ``submit`` and are the defaults of ``map``.
    """

    def __init__(
        self,
        backend: str = "thread",
        workers: int | Workers | None = None,
        *,
        task_timeout: float | None = None,
        retries: int | Retry | None = None,
    ) -> None:
        check.check_backend(backend, "plait.Pool")
        check.check_workers(workers, "plait.Pool")
        spec = as_workers(workers)
        spec.check_backend(backend, "plait.Pool")
        check.check_timeout(task_timeout, "plait.Pool", "task_timeout")
        self._task_timeout = task_timeout
        self._retry = as_retry(retries, "plait.Pool")
        self._backend: Backend = create_backend(backend, spec)
        self._submit_jobs: OrderedDict[Callable[..., Any], Job] = OrderedDict()
        self._closed = False

    @property
    def backend(self) -> str:
        return self._backend.name

    @property
    def workers(self) -> int:
        return self._backend.workers

    def __repr__(self) -> str:
        state = "shut down" if self._closed else "open"
        return f"<plait.Pool backend={self.backend!r} workers={self.workers} {state}>"

    @overload
    def submit(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Future[R]: ...
    @overload
    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]: ...

    def submit(self, fn: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> Future[Any]:
        check.check_fn(fn, "Pool.submit")
        check.check_fits_backend(fn, self.backend, "Pool.submit")
        future: Future[Any] = _PoolFuture(self._backend)
        task = Task(
            self._job_for_submit(fn),
            [(args, kwargs)],
            start=future.set_running_or_notify_cancel,
            finish=lambda _task, outcome: _settle(future, outcome),
            discard=future.cancel,
            timeout=self._task_timeout,
            token=CancelToken(),
        )
        self._backend.submit(task)
        return future

    def _job_for_submit(self, fn: Callable[..., Any]) -> Job:
        # A process backend ships each Job's function once per worker: reuse the Job for a
        # function submitted again and again. Unhashable callables just get a fresh Job.
        try:
            job = self._submit_jobs.pop(fn, None)
        except TypeError:
            return Job(fn, Kind.CALL, self._retry)
        if job is None:
            job = Job(fn, Kind.CALL, self._retry)
            if len(self._submit_jobs) >= _SUBMIT_JOBS_CACHED:
                _, evicted = self._submit_jobs.popitem(last=False)
                self._backend.release(evicted)
        self._submit_jobs[fn] = job
        return job

    @overload
    def map(
        self,
        fn: Callable[..., R],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
        ordered: bool = True,
        errors: Literal["raise"] = "raise",
        progress: bool = False,
        task_timeout: float | None = None,
        retries: int | Retry | None = None,
        rate: float | None = None,
    ) -> MapIterator[R]: ...

    @overload
    def map(
        self,
        fn: Callable[..., R],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
        ordered: bool = True,
        errors: Literal["return"],
        progress: bool = False,
        task_timeout: float | None = None,
        retries: int | Retry | None = None,
        rate: float | None = None,
    ) -> MapIterator[R | BaseException]: ...

    def map(
        self,
        fn: Callable[..., R],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
        ordered: bool = True,
        errors: Literal["raise", "return"] = "raise",
        progress: bool = False,
        task_timeout: float | None = None,
        retries: int | Retry | None = None,
        rate: float | None = None,
    ) -> MapIterator[R] | MapIterator[R | BaseException]:
        """Like ``Executor.map``, but lazy: input is read as results are consumed.

        ``timeout`` is the deadline of the whole map, counted from this call: a result not
        ready by then raises ``TimeoutError`` when it is asked for. ``task_timeout`` and
        ``retries`` default to the pool's.
        """
        check.check_timeout(timeout, "Pool.map")
        options = MapOptions.build(
            "Pool.map",
            chunksize=chunksize,
            ordered=ordered,
            errors=errors,
            progress=progress,
            task_timeout=self._task_timeout if task_timeout is None else task_timeout,
            retries=self._retry if retries is None else retries,
            deadline=None if timeout is None else time.monotonic() + timeout,
            rate=rate,
        )
        return self._map(fn, iterables, options)

    def _map(
        self, fn: Callable[..., R], iterables: tuple[Iterable[Any], ...], options: MapOptions
    ) -> MapIterator[R]:
        where = options.where
        check.check_fn(fn, where)
        check.check_fits_backend(fn, self.backend, where)
        total = check.check_iterables(iterables, where)
        if self._closed:
            raise PoolClosed(f"{where}: cannot start a map on a pool that is shut down")
        observers: list[MapObserver] = []
        if options.progress:
            from ._progress import ProgressBar

            observers.append(ProgressBar())
        kind = Kind.MAP if len(iterables) == 1 else Kind.STAR
        backend = self._backend
        if options.rate is not None:
            from ._rate import rate_limited

            fn = rate_limited(fn, options.rate, backend.name, backend.workers)
        job = Job(fn, kind, options.retry)
        source = open_input(iterables, where)
        owned = options.owns_pool

        def on_close(complete: bool) -> None:
            backend.release(job)
            if not owned:
                return
            self._closed = True
            if complete:
                backend.shutdown(wait=True, cancel_pending=False)
            else:
                backend.terminate()

        # A timed item travels alone: a batch's deadline would not say which item overran.
        fixed = 1 if options.task_timeout is not None else options.chunksize
        run = MapRun(
            backend,
            job,
            source,
            sizer=ChunkSizer(
                backend.name, backend.workers, fixed=fixed, total=total, limit=backend.batch_limit
            ),
            ordered=options.ordered,
            errors=options.errors,
            deadline=options.deadline,
            observer=Observers(observers),
            on_close=on_close,
            total=total,
            task_timeout=options.task_timeout,
        )
        return MapIterator(run)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking work. Pending work still runs unless ``cancel_futures``; with ``wait``,
        return once every worker has exited."""
        self._closed = True
        self._backend.shutdown(wait=wait, cancel_pending=cancel_futures)

    def terminate(self) -> None:
        """Stop now: drop pending work, kill process workers, abandon busy threads (after half a
        second's grace, during which ``plait.cancelled()`` is True in their tasks)."""
        self._closed = True
        self._backend.terminate()

    def __del__(self) -> None:
        # A pool dropped without shutdown() would keep its threads, its processes and their
        # sockets until the program ends: end them now, and say so, as an unclosed file does.
        try:
            if self._closed or not self._backend.started():
                return
        except AttributeError:  # __init__ raised before the backend existed
            return
        message = (
            f"unclosed {self!r}: use it in a `with` block, or call shutdown(); its workers "
            "were told to stop when it was collected"
        )
        self._closed = True
        try:
            self._backend.shutdown(wait=False, cancel_pending=False)
        finally:
            warnings.warn(
                message,
                ResourceWarning,
                stacklevel=2,
                source=self,
            )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Ctrl-C (or SystemExit, or Cancelled) must not wait for every running task to end.
        if exc is not None and not isinstance(exc, Exception):
            self.terminate()
        else:
            self.shutdown(wait=True)


@dataclass(frozen=True, slots=True)
class MapOptions:
    """How one map runs, checked once: what plait.map and Pool.map were given."""

    where: str
    chunksize: int | None
    ordered: bool
    errors: Literal["raise", "return"]
    progress: bool
    task_timeout: float | None
    retry: Retry | None
    deadline: float | None
    owns_pool: bool
    rate: float | None = None

    @classmethod
    def build(
        cls,
        where: str,
        *,
        chunksize: int | None,
        ordered: bool,
        errors: Literal["raise", "return"],
        progress: bool,
        task_timeout: float | None,
        retries: int | Retry | None,
        deadline: float | None = None,
        owns_pool: bool = False,
        rate: float | None = None,
    ) -> MapOptions:
        check.check_chunksize(chunksize, where)
        check.check_choice("ordered", ordered, (True, False), where)
        check.check_choice("errors", errors, ("raise", "return"), where)
        check.check_choice("progress", progress, (True, False), where)
        check.check_timeout(task_timeout, where, "task_timeout")
        if task_timeout is not None and chunksize not in (None, 1):
            raise ValueError(
                f"{where}: chunksize={chunksize} cannot be combined with task_timeout: an item "
                "with a time limit is sent to a worker alone; leave chunksize out"
            )
        retry = as_retry(retries, where)
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float)):
            raise TypeError(f"{where}: rate must be a number of calls per second, got {rate!r}")
        if rate is not None and rate <= 0:
            raise ValueError(f"{where}: rate must be > 0 calls per second, got {rate}")
        return cls(
            where,
            chunksize,
            ordered,
            errors,
            progress,
            task_timeout,
            retry,
            deadline,
            owns_pool,
            rate,
        )


class _PoolFuture(Future[R]):
    """A standard Future whose ``result()`` and ``exception()``, called inside a task of the
    same pool, let the pool run one more thread while they wait (see ``Backend.blocking``)."""

    def __init__(self, backend: Backend) -> None:
        super().__init__()
        self._backend = backend

    def result(self, timeout: float | None = None) -> R:
        if self.done():
            return super().result()
        with self._backend.blocking():
            return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if self.done():
            return super().exception()
        with self._backend.blocking():
            return super().exception(timeout)


def _settle(future: Future[Any], outcome: Outcome) -> None:
    if outcome.errors:
        future.set_exception(outcome.errors[0])
    else:
        future.set_result(outcome.values[0])
