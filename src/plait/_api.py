"""The one-call entry points: thin layers over Pool and the scheduler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from . import _validate as check
from ._engine import open_owned_map
from ._options import MapKeywords, MapOptions
from ._stream import MapIterator
from ._taskgroup import TaskGroup
from ._worker_spec import Workers, as_workers

if TYPE_CHECKING:
    from typing_extensions import Unpack

R = TypeVar("R")


@overload
def map(
    fn: Callable[..., Awaitable[R]],
    *iterables: Iterable[Any],
    workers: int | Workers | None = None,
    backend: str = "auto",
    errors: Literal["raise"] = "raise",
    **options: Unpack[MapKeywords],
) -> MapIterator[R]: ...
@overload
def map(
    fn: Callable[..., Awaitable[R]],
    *iterables: Iterable[Any],
    workers: int | Workers | None = None,
    backend: str = "auto",
    errors: Literal["return"],
    **options: Unpack[MapKeywords],
) -> MapIterator[R | BaseException]: ...
@overload
def map(
    fn: Callable[..., R],
    *iterables: Iterable[Any],
    workers: int | Workers | None = None,
    backend: str = "auto",
    errors: Literal["raise"] = "raise",
    **options: Unpack[MapKeywords],
) -> MapIterator[R]: ...
@overload
def map(
    fn: Callable[..., R],
    *iterables: Iterable[Any],
    workers: int | Workers | None = None,
    backend: str = "auto",
    errors: Literal["return"],
    **options: Unpack[MapKeywords],
) -> MapIterator[R | BaseException]: ...


def map(
    fn: Callable[..., Any],
    *iterables: Iterable[Any],
    workers: int | Workers | None = None,
    backend: str = "auto",
    errors: Literal["raise", "return"] = "raise",
    **options: Unpack[MapKeywords],
) -> MapIterator[Any]:
    """Apply ``fn`` to every item, concurrently, and iterate over the results.

    Lazy like the builtin ``map``: nothing runs until the first result is asked for, and the
    input is read only a bounded window ahead of what has been consumed. The workers are started
    for this map and released when it ends, fails, or is abandoned. Use ``plait.Pool`` to keep
    workers across several maps.

    ``backend="auto"`` (the default) measures the first items and runs the rest where they cost
    least: threads for waiting work (as many as raise throughput), processes for computing work
    that holds the GIL, threads for work that releases it, inline for tiny work; the iterator's
    ``plan`` says which, and why. ``"thread"`` or ``"process"`` choose yourself.

    An ``async def`` function runs on an event loop thread, at most ``workers`` coroutines at
    once (1,000 by default).

    The keywords (``plait.MapKeywords``): ``ordered``, ``chunksize``, ``timeout`` (seconds for
    the whole map), ``task_timeout`` (seconds per item: an overrunning item fails with
    TaskTimeout, its process worker is killed, a thread abandoned, and replaced), ``retries``
    (an int, or a ``plait.Retry``), ``progress`` (a tqdm bar) and ``rate`` (calls per second:
    one token bucket that every worker of the map shares, threads and processes alike).
    """
    where = "plait.map"
    backend = resolve_backend(fn, backend, workers, where)
    built = MapOptions.build(where, errors, options)
    return open_owned_map(fn, iterables, backend, workers, built)


def resolve_backend(
    fn: Callable[..., Any], backend: str, workers: int | Workers | None, where: str
) -> str:
    """Check ``backend`` and ``workers``; an ``async def`` function runs on ``"async"``."""
    check.check_backend(backend, where)
    check.check_workers(workers, where)
    if check.is_async(fn):  # coroutines run on an event loop thread, not in a thread pool
        if backend == "process":
            raise ValueError(
                f"{where}: fn is an async function; it runs on an event loop thread, "
                "not on processes: leave backend out"
            )
        backend = "async"
    as_workers(workers).check_backend(backend, where)
    return backend


A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")
D = TypeVar("D")


@overload
def run(a: Callable[[], A], /, *, backend: str = ..., timeout: float | None = ...) -> tuple[A]: ...
@overload
def run(
    a: Callable[[], A], b: Callable[[], B], /, *, backend: str = ..., timeout: float | None = ...
) -> tuple[A, B]: ...
@overload
def run(
    a: Callable[[], A],
    b: Callable[[], B],
    c: Callable[[], C],
    /,
    *,
    backend: str = ...,
    timeout: float | None = ...,
) -> tuple[A, B, C]: ...
@overload
def run(
    a: Callable[[], A],
    b: Callable[[], B],
    c: Callable[[], C],
    d: Callable[[], D],
    /,
    *,
    backend: str = ...,
    timeout: float | None = ...,
) -> tuple[A, B, C, D]: ...
@overload
def run(
    *fns: Callable[[], Any], backend: str = ..., timeout: float | None = ...
) -> tuple[Any, ...]: ...


def run(
    *fns: Callable[[], Any], backend: str = "thread", timeout: float | None = None
) -> tuple[Any, ...]:
    """Run the functions concurrently, one worker each; return their results in order.

    The first failure cancels the others (see TaskGroup) and is raised; when several failed,
    they are raised together as an ExceptionGroup. ``functools.partial`` passes arguments.
    """
    for fn in fns:
        check.check_fn(fn, "plait.run")
    failure: BaseException | None = None
    try:
        with TaskGroup(workers=max(1, len(fns)), backend=backend, timeout=timeout) as group:
            handles = [group.submit(fn) for fn in fns]
    except BaseExceptionGroup as failed:
        if len(failed.exceptions) != 1:
            raise
        failure = failed.exceptions[0]
    if failure is not None:
        # Raised here, out of the ``except``: as it was raised, its own ``__cause__`` (the
        # worker's traceback, or the user's ``raise ... from ...``) and ``__context__`` kept,
        # not chained to the group that carried it.
        try:
            raise failure
        finally:
            failure = None  # (a frame of its traceback holding it would make a cycle)
    return tuple(handle.result() for handle in handles)
