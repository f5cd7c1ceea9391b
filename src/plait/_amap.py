"""``plait.amap``: a concurrent map for async code, that never blocks the event loop.

    async for result in plait.amap(fetch, urls, workers=50):   # async def fetch: on this loop
        ...
    results = await plait.amap(parse, pages, backend="process") # plain def parse: on a pool

An ``async def`` function runs on the caller's own event loop, at most ``workers`` coroutines at
once. A plain function runs on a plait pool (threads or processes), its results handed to the
loop as they come. Either way the input is read lazily, a bounded window ahead of what was
consumed, so memory stays flat over an endless input.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from . import _validate as check
from ._api import resolve_backend
from ._backends._async import DEFAULT_ASYNC_WORKERS, run_item
from ._engine import open_owned_map
from ._events import MapObserver
from ._options import MapKeywords, MapOptions
from ._rate import rate_limited
from ._scheduler import MapIterator, describe_item, open_input
from ._task import Job, Kind

if TYPE_CHECKING:
    from typing_extensions import Unpack

R = TypeVar("R")
_DONE = object()


class AsyncMapIterator(Generic[R]):
    """What ``plait.amap`` returns: iterate with ``async for``, or ``await`` it for a list."""

    def __init__(self, results: AsyncIterator[R], close: Callable[[], Any]) -> None:
        self._results = results
        self._close = close

    def __aiter__(self) -> AsyncIterator[R]:
        return self._results

    async def __anext__(self) -> R:
        return await self._results.__anext__()

    def __await__(self) -> Generator[Any, None, list[R]]:
        return self._collect().__await__()

    async def _collect(self) -> list[R]:
        return [result async for result in self._results]

    async def aclose(self) -> None:
        """Stop: cancel what runs, release the workers."""
        await self._results.aclose()  # type: ignore[attr-defined]
        result = self._close()
        if asyncio.iscoroutine(result):
            await result

    async def __aenter__(self) -> AsyncMapIterator[R]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def amap(
    fn: Callable[..., Any],
    *iterables: Iterable[Any],
    workers: int | None = None,
    backend: str = "thread",
    errors: Literal["raise", "return"] = "raise",
    **options: Unpack[MapKeywords],
) -> AsyncMapIterator[Any]:
    """``plait.map`` for async code: ``async for`` over it, or ``await`` it for a list.

    It takes ``plait.map``'s keywords. An ``async def`` function runs on this loop, one
    coroutine per item (``chunksize`` does not apply); a plain function runs on a plait pool.
    """
    where = "plait.amap"
    check.check_fn(fn, where)
    backend = resolve_backend(fn, backend, workers, where)
    built = MapOptions.build(where, errors, options)
    if backend != "async":
        results = open_owned_map(fn, iterables, backend, workers, built)
        return AsyncMapIterator(_from_blocking(results), results.close)
    if not isinstance(workers, int | None):
        raise TypeError(f"{where}: workers must be an int for an async function")
    total = check.check_iterables(iterables, where)
    limit = workers or DEFAULT_ASYNC_WORKERS
    if built.rate is not None:
        fn = rate_limited(fn, built.rate, "async", limit)
    job = Job(fn, Kind.MAP if len(iterables) == 1 else Kind.STAR, built.retry)
    observer: MapObserver = MapObserver()
    if built.progress:
        from ._progress import ProgressBar

        observer = ProgressBar()
    stream = _coroutines(job, open_input(iterables, where), limit, built, observer, total)
    return AsyncMapIterator(stream, lambda: None)


async def _from_blocking(results: MapIterator[Any]) -> AsyncIterator[Any]:
    """A plait map's results, each fetched on a helper thread: the loop never blocks.

    When the caller is cancelled (``asyncio.wait_for``, a TaskGroup, Ctrl-C under
    ``asyncio.run``) while a fetch waits, the map is aborted: the waiting fetch returns at once,
    the work is stopped (processes terminated, threads told to stop) and the cancellation goes
    on its way.
    """
    loop = asyncio.get_running_loop()
    # A thread of its own: waiting fetches must not hold the threads of the loop's default
    # executor, which asyncio.to_thread and getaddrinfo (every new connection) need.
    fetcher = ThreadPoolExecutor(1, thread_name_prefix="plait-amap-fetch")
    fetch: asyncio.Future[Any] | None = None
    try:
        while True:
            fetch = loop.run_in_executor(fetcher, next, results, _DONE)
            result = await asyncio.shield(fetch)
            fetch = None
            if result is _DONE:
                return
            yield result
    finally:
        if fetch is not None:  # cancelled while a fetch was waiting: end it, then close
            results.abort()
            await asyncio.wait([fetch])  # its outcome is of no interest now
        try:
            await loop.run_in_executor(fetcher, results.close)
        finally:
            fetcher.shutdown(wait=True)  # idle by now: it ends at once


async def _coroutines(
    job: Job,
    source: Iterator[Any],
    limit: int,
    options: MapOptions,
    observer: MapObserver,
    total: int | None,
) -> AsyncIterator[Any]:
    """Run an async job over ``source`` on this loop, at most ``limit`` items at once."""
    ordered, timeout = options.ordered, options.task_timeout
    raise_errors = options.errors == "raise"
    observer.started(total)
    started: dict[asyncio.Task[Any], tuple[int, Any]] = {}  # running or not yet yielded
    in_order: deque[asyncio.Task[Any]] = deque()
    finished: asyncio.Queue[asyncio.Task[Any]] = asyncio.Queue()
    read = 0  # items taken from the input
    exhausted = False
    input_error: Exception | None = None
    try:
        while True:
            while not exhausted and len(started) < limit:
                try:
                    item = next(source, _DONE)
                except Exception as exc:  # raised once the items read before it are out
                    exc.add_note(f"plait: raised by the input after {read} items")
                    input_error, exhausted = exc, True
                    break
                if item is _DONE:
                    exhausted = True
                    break
                task = asyncio.ensure_future(run_item(job, item, timeout))
                started[task] = (read, item)
                read += 1
                if ordered:
                    in_order.append(task)
                else:
                    task.add_done_callback(finished.put_nowait)
            if not started:
                if input_error is not None:
                    raise input_error
                return
            if ordered:
                task = in_order.popleft()
                await _by_deadline(asyncio.wait([task]), options.deadline)
            else:
                task = await _by_deadline(finished.get(), options.deadline)
            index, item = started.pop(task)
            observer.progressed(1)
            error = task.exception()
            if error is None:
                yield task.result()
                continue
            error.add_note(f"plait: raised by item {index}: {describe_item(item)}")
            if raise_errors:
                raise error
            yield error
    finally:
        for task in started:
            task.cancel()
        if started:
            await asyncio.gather(*started, return_exceptions=True)
        observer.finished()


async def _by_deadline(waiting: Awaitable[R], deadline: float | None) -> R:
    if deadline is None:
        return await waiting
    try:
        return await asyncio.wait_for(waiting, max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        raise TimeoutError("the map did not finish within its timeout") from None
