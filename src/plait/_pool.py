"""Pool: a context manager that owns one backend's workers, reusable for many maps.

It is a real ``concurrent.futures.Executor``: ``submit`` returns a standard Future, ``map``
keeps the Executor's meaning of ``timeout`` (a deadline for the whole map) and ``shutdown``
its semantics. ``map`` is lazy, unlike the Executor's, which reads all of its input at once.
The work itself is the engine's (``_engine``): this module is the Executor face of it.
"""

from __future__ import annotations

import threading
import warnings
import weakref
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import CancelledError, Executor, Future
from contextlib import suppress
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, overload

from . import _validate as check
from ._backends import Backend
from ._cancel import CancelToken
from ._engine import Engine
from ._errors import Cancelled, PoolClosed
from ._options import MapKeywords, MapOptions
from ._retry import Retry, as_retry
from ._stream import MapIterator
from ._task import Outcome
from ._waits import attentive
from ._worker_spec import Workers, as_workers

if TYPE_CHECKING:
    from typing_extensions import Unpack

R = TypeVar("R")
P = ParamSpec("P")


class Pool(Executor):
    """Workers of one backend, started on first use. ``"auto"`` (the default) decides for each
    map where it runs (see ``plait.map``), and runs ``submit`` calls on threads; ``"thread"``
    and ``"process"`` are yours to choose.

    ``workers`` is a count, or a ``plait.Workers`` for an initializer, recycling and the start
    method. ``task_timeout`` and ``retries`` apply to ``submit`` and are the defaults of ``map``.
    """

    def __init__(
        self,
        backend: str = "auto",
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
        self._engine = Engine(backend, spec, retry=self._retry)
        self._backend: Backend = self._engine.backend
        self._closed = False
        _open_pools.add(self)

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
        self._engine.submit_call(
            fn,
            args,
            kwargs,
            start=future.set_running_or_notify_cancel,
            finish=lambda _task, outcome: _settle(future, outcome),
            discard=lambda _task: _drop(future),
            timeout=self._task_timeout,
            token=CancelToken(),
        )
        return future

    @overload
    def map(
        self,
        fn: Callable[..., R],
        *iterables: Iterable[Any],
        errors: Literal["raise"] = "raise",
        **options: Unpack[MapKeywords],
    ) -> MapIterator[R]: ...
    @overload
    def map(
        self,
        fn: Callable[..., R],
        *iterables: Iterable[Any],
        errors: Literal["return"],
        **options: Unpack[MapKeywords],
    ) -> MapIterator[R | BaseException]: ...

    def map(
        self,
        fn: Callable[..., R],
        *iterables: Iterable[Any],
        errors: Literal["raise", "return"] = "raise",
        **options: Unpack[MapKeywords],
    ) -> MapIterator[R] | MapIterator[R | BaseException]:
        """Like ``Executor.map``, but lazy: input is read as results are consumed.

        ``timeout`` is the deadline of the whole map, counted from this call: a result not
        ready by then raises ``TimeoutError`` when it is asked for. ``task_timeout`` and
        ``retries`` default to the pool's (``plait.DEFAULT``); None switches them off for this
        map. The other keywords are ``plait.map``'s.
        """
        built = MapOptions.build(
            "Pool.map", errors, options, task_timeout=self._task_timeout, retry=self._retry
        )
        if self._closed:
            raise PoolClosed("Pool.map: cannot start a map on a pool that is shut down")
        return self._engine.open_map(fn, iterables, built, on_close=self._map_closed)

    def _map_closed(self, complete: bool, hurried: bool) -> None:
        """Nothing to do: the pool outlives its maps. But the map holds this bound method,
        and so the pool, until the map ends: a pool never named (``list(plait.Pool().map(f,
        xs))``) was collected before its map started the workers, which nobody then shut
        down; now it is collected after, and its ``__del__`` shuts them down."""

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking work. Pending work still runs unless ``cancel_futures``; with ``wait``,
        return once every worker has exited."""
        self._closed = True
        try:
            self._engine.shutdown(wait=wait, cancel_pending=cancel_futures)
        except BaseException:
            # Ctrl-C while it waits for the work (as a `with` block's end does: a block that
            # only submits spends its time there) stops the work, as one press anywhere does:
            # pending work dropped, process workers ended, busy threads told to stop.
            self._engine.terminate()
            raise

    def terminate(self) -> None:
        """Stop now: drop pending work, kill process workers, abandon busy threads (after half a
        second's grace, during which ``plait.cancelled()`` is True in their tasks)."""
        self._closed = True
        self._engine.terminate()

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
            self._engine.shutdown(wait=False, cancel_pending=False)
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


# Pools still open when the interpreter exits finish the work they accepted first, as a
# concurrent.futures Executor does: their threads are daemons, which would otherwise die with
# the interpreter, taking submitted work with them. (Workers of a plait.map left open are
# abandoned instead, at exit as anywhere else: see _backends.)
_open_pools: weakref.WeakSet[Pool] = weakref.WeakSet()


def _finish_open_pools() -> None:
    pools = [pool for pool in list(_open_pools) if not pool._closed]
    try:
        for pool in pools:
            pool.shutdown(wait=True)
    except BaseException:  # Ctrl-C while waiting at exit: stop them all now
        for pool in pools:
            pool.terminate()
        raise


threading._register_atexit(_finish_open_pools)  # type: ignore[attr-defined]


class _PoolFuture(Future[R]):
    """A standard Future whose ``result()`` and ``exception()``, called inside a task of the
    same pool, let the pool run one more thread while they wait (see ``Backend.blocking``),
    and take a timeout of any length: the standard one raised OverflowError past 1e10 s
    (its lock's wait), which a plait timeout may well be (see ``_waits``)."""

    def __init__(self, backend: Backend) -> None:
        super().__init__()
        self._backend = backend

    def result(self, timeout: float | None = None) -> R:
        self._wait(timeout)
        return super().result(0)  # (TimeoutError if it is not done: the wait ran out)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._wait(timeout)
        return super().exception(0)

    def _wait(self, timeout: float | None) -> None:
        if not self.done():
            with self._backend.blocking():
                attentive(self._done_within, timeout)

    def _done_within(self, seconds: float | None) -> bool:
        # (``exception`` returns the call's own error, a TaskTimeout too, and raises
        # TimeoutError only when the wait ran out, CancelledError once cancelled.)
        with suppress(TimeoutError, CancelledError):
            super().exception(seconds)
        return self.done()


def _settle(future: Future[Any], outcome: Outcome) -> None:
    if outcome.errors:
        error = outcome.errors[0]
        if isinstance(error, Cancelled):  # (running when its pool was terminated)
            # The Executor contract: a cancelled call raises CancelledError (an Exception, which
            # code that handles futures catches), not plait's BaseException; the reason stays.
            cancelled = CancelledError(str(error))
            cancelled.__cause__ = error
            error = cancelled
        future.set_exception(error)
    else:
        future.set_result(outcome.values[0])


def _drop(future: Future[Any]) -> None:
    """A shutdown dropped the call before it started: the future is cancelled, and told so
    as a worker would tell it, so that ``concurrent.futures.wait`` and ``as_completed`` see it
    done (``cancel()`` alone wakes only ``result()``)."""
    if future.cancel():
        with suppress(RuntimeError):  # (told already: its start was asked after a cancel())
            future.set_running_or_notify_cancel()
