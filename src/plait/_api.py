"""The one-call entry points: thin layers over Pool and the scheduler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal, TypeVar, overload

from . import _validate as check
from ._pool import MapOptions, Pool
from ._retry import Retry
from ._scheduler import MapIterator
from ._taskgroup import TaskGroup
from ._workers import Workers

R = TypeVar("R")


@overload
def map(
    fn: Callable[..., Awaitable[R]],
    *iterables: Iterable[Any],
    workers: int | Workers | None = None,
    backend: str = "thread",
    ordered: bool = True,
    chunksize: int | None = None,
    errors: Literal["raise"] = "raise",
    progress: bool = False,
    task_timeout: float | None = None,
    retries: int | Retry | None = None,
    rate: float | None = None,
) -> MapIterator[R]: ...


@overload
def map(
    fn: Callable[..., Awaitable[R]],
    *iterables: Iterable[Any],
    workers: int | Workers | None = None,
    backend: str = "thread",
    ordered: bool = True,
    chunksize: int | None = None,
    errors: Literal["return"],
    progress: bool = False,
    task_timeout: float | None = None,
    retries: int | Retry | None = None,
    rate: float | None = None,
) -> MapIterator[R | BaseException]: ...


@overload
def map(
    fn: Callable[..., R],
    *iterables: Iterable[Any],
    workers: int | Workers | None = None,
    backend: str = "thread",
    ordered: bool = True,
    chunksize: int | None = None,
    errors: Literal["raise"] = "raise",
    progress: bool = False,
    task_timeout: float | None = None,
    retries: int | Retry | None = None,
    rate: float | None = None,
) -> MapIterator[R]: ...


@overload
def map(
    fn: Callable[..., R],
    *iterables: Iterable[Any],
    workers: int | Workers | None = None,
    backend: str = "thread",
    ordered: bool = True,
    chunksize: int | None = None,
    errors: Literal["return"],
    progress: bool = False,
    task_timeout: float | None = None,
    retries: int | Retry | None = None,
    rate: float | None = None,
) -> MapIterator[R | BaseException]: ...


def map(
    fn: Callable[..., Any],
    *iterables: Iterable[Any],
    workers: int | Workers | None = None,
    backend: str = "thread",
    ordered: bool = True,
    chunksize: int | None = None,
    errors: Literal["raise", "return"] = "raise",
    progress: bool = False,
    task_timeout: float | None = None,
    retries: int | Retry | None = None,
    rate: float | None = None,
) -> MapIterator[Any]:
    """Apply ``fn`` to every item, concurrently, and iterate over the results.

    Lazy like the builtin ``map``: nothing runs until the first result is asked for, and the
    input is read only a bounded window ahead of what has been consumed. The workers are started
    for this map and released when it ends, fails, or is abandoned. Use ``plait.Pool`` to keep
    workers across several maps.

    An ``async def`` function runs on an event loop thread, at most ``workers`` coroutines at
    once (1,000 by default).

    ``task_timeout`` limits each item (seconds): an overrunning item fails with TaskTimeout, its
    process worker is killed (a thread is abandoned) and replaced. ``retries`` (an int, or a
    ``plait.Retry``) gives failing items more attempts. ``rate`` calls ``fn`` at most that many
    times a second (a token bucket shared by the threads; an equal share per process worker).
    """
    check.check_backend(backend, "plait.map")
    check.check_workers(workers, "plait.map")
    if check.is_async(fn):  # coroutines run on an event loop thread, not in a thread pool
        if backend == "process":
            raise ValueError(
                "plait.map: fn is an async function; it runs on an event loop thread, "
                "not on processes: leave backend out"
            )
        backend = "async"
    options = MapOptions.build(
        "plait.map",
        chunksize=chunksize,
        ordered=ordered,
        errors=errors,
        progress=progress,
        task_timeout=task_timeout,
        retries=retries,
        owns_pool=True,
        rate=rate,
    )
    return Pool(backend, workers)._map(fn, iterables, options)


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
    try:
        with TaskGroup(workers=max(1, len(fns)), backend=backend, timeout=timeout) as group:
            handles = [group.submit(fn) for fn in fns]
    except BaseExceptionGroup as failed:
        if len(failed.exceptions) == 1:
            raise failed.exceptions[0] from None
        raise
    return tuple(handle.result() for handle in handles)
