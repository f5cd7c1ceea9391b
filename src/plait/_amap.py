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
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
)
from concurrent.futures import Future
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, cast

from . import _trace
from . import _validate as check
from ._api import resolve_backend
from ._async_call import DEFAULT_ASYNC_WORKERS, Ended, run_item
from ._async_input import END, Buffer, Inputs, ReaderThread, bridged, is_async_iterable, off_loop
from ._chunking import ChunkSizer
from ._cores import check_environment
from ._engine import open_owned_map, prepare_map
from ._errors import Cancelled, CancelReason
from ._events import MapObserver
from ._options import MapKeywords, MapOptions
from ._stream import MapIterator
from ._task import Job, Outcome, task_error
from ._window import MapWindow, Taken, open_input

if TYPE_CHECKING:
    from typing_extensions import Unpack

R = TypeVar("R")


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
    *iterables: Iterable[Any] | AsyncIterable[Any],
    workers: int | None = None,
    backend: str = "auto",
    errors: Literal["raise", "return"] = "raise",
    **options: Unpack[MapKeywords],
) -> AsyncMapIterator[Any]:
    """``plait.map`` for async code: ``async for`` over it, or ``await`` it for a list.

    It takes ``plait.map``'s keywords. An ``async def`` function runs on this loop, one
    coroutine per item (``chunksize`` does not apply); a plain function runs on a plait pool.
    An input may be an async iterable (read on this loop), and one that waits for its items
    (a generator, a file) is read on a thread of its own: the loop never blocks on it.
    """
    where = "plait.amap"
    check.check_fn(fn, where)
    backend = resolve_backend(fn, backend, workers, where)
    built = MapOptions.build(where, errors, options)
    total = check.check_iterables(iterables, where, async_ok=True)
    if backend != "async":
        bridge = Bridge()  # (an async input is read on the loop, for the pool's reading thread)
        plain = tuple(
            bridge.wrap(it) if is_async_iterable(it) else cast(Iterable[Any], it)
            for it in iterables
        )
        results = open_owned_map(fn, plain, backend, workers, built)
        fetched = _from_blocking(results, bridge, built.deadline)
        return AsyncMapIterator(fetched, lambda: _close_unless_closed(results))
    if not isinstance(workers, int | None):
        raise TypeError(f"{where}: workers must be an int for an async function")
    check_environment()  # (as every other map does, through its Engine)
    limit = workers or DEFAULT_ASYNC_WORKERS
    job, observer = prepare_map(fn, iterables, built, "async", limit)
    inputs = Inputs(iterables, where)
    # An input at hand (lists, ranges) is read by the window itself; any other through a
    # buffer that the loop fills without blocking (``_async_input``).
    buffer = None if inputs.at_hand else Buffer()
    window: MapWindow[Taken] = MapWindow(
        open_input(cast(tuple[Iterable[Any], ...], iterables), where) if buffer is None else buffer,
        ChunkSizer("async", limit, fixed=1),  # one coroutine per item
        ordered=built.ordered,
        raise_errors=built.errors == "raise",
        max_batches=limit,
        max_items=limit,
    )
    driven = _coroutines(job, window, built, observer, total, inputs if buffer else None, buffer)
    return AsyncMapIterator(driven, lambda: None)


class Bridge:
    """The async inputs of a map on a pool, each read as a plain iterator by the pool's
    reading thread, one item at a time on the caller's loop (``_async_input.bridged``)."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None  # set as the map starts, on it
        self.pending: list[Future[Any]] = []  # the read under way

    def wrap(self, iterable: Any) -> Iterator[Any]:
        def items() -> Iterator[Any]:
            assert self.loop is not None
            yield from bridged(iterable, self.loop, self.pending)

        return items()

    def cancel(self) -> None:
        """End the read under way (its error ends the input): the map is cancelled."""
        for future in list(self.pending):
            future.cancel()


def _close_unless_closed(results: MapIterator[Any]) -> None:
    """Close a map that its fetching did not close (it never started). One it did may still
    be inside its thread's read of the input: closing its generator there would raise."""
    if not results._run.closed:
        results.close()


async def _from_blocking(
    results: MapIterator[Any], bridge: Bridge, deadline: float | None
) -> AsyncIterator[Any]:
    """A plait map's results, each fetched on a helper thread: the loop never blocks.

    When the caller is cancelled (``asyncio.wait_for``, a TaskGroup, Ctrl-C under
    ``asyncio.run``) while a fetch is under way, the map is aborted and closed, and the
    cancellation goes on its way at once: the work is stopped (processes terminated, threads
    told to stop). The fetch itself is not waited for: it may be reading the map's input, for
    as long as that takes (its thread, a daemon, then ends). The map's deadline is kept here
    too: its own thread does not see it while it reads an input that waits.
    """
    bridge.loop = asyncio.get_running_loop()
    # A thread of its own: waiting fetches must not hold the threads of the loop's default
    # executor, which asyncio.to_thread and getaddrinfo (every new connection) need.
    fetcher = ReaderThread(iter(results), name="plait-amap-fetch")
    fetch: asyncio.Future[tuple[Any, BaseException | None]] | None = None
    try:
        while True:
            # (A future, its error raised here: a task of its own raising an item's Ctrl-C or
            # SystemExit handed it to the event loop, and the consumer got a CancelledError.)
            # Past the deadline, a fetch reads no input and waits for no item (the map's own
            # deadline ends it, ``MapRun.next_batch``): what is ready is still handed out, as
            # plait.map does. Before it, the fetch may wait in a read the map cannot end.
            late = deadline is not None and time.monotonic() >= deadline
            fetch = fetcher.ask()
            result, error = await (
                asyncio.shield(fetch) if late else _by_deadline(asyncio.shield(fetch), deadline)
            )
            fetch = None
            if error is not None:
                raise error
            if result is END:
                return
            yield result
    finally:
        # (The fetcher's thread ends whatever happens to the awaits below: a generator dropped
        # as asyncio.run ends is closed by a GeneratorExit that interrupts them, on 3.11.)
        try:
            if fetch is not None and not fetch.done():  # cancelled while a fetch was under way
                reading = results.abort()
                bridge.cancel()  # (the fetch may be reading an async input, on this loop)
                if not reading or bridge.pending:
                    await asyncio.wait([fetch])  # (it ends at once: Cancelled)
                    if not fetch.cancelled():
                        fetch.exception()  # of no interest now (asyncio would report it)
                    await off_loop(results.close)
                else:
                    # It is in a read of the input, which may wait for good: not waited for.
                    # The map is closed from here (closing its generator, running in that
                    # thread, would raise); that thread's next() ends with Cancelled once the
                    # read does.
                    fetch.cancel()
                    await off_loop(results._run.close)
            else:
                await off_loop(results.close)
        finally:
            fetcher.close()


async def _coroutines(
    job: Job,
    window: MapWindow[Taken],
    options: MapOptions,
    observer: MapObserver,
    total: int | None,
    inputs: Inputs | None = None,
    buffer: Buffer | None = None,
) -> AsyncIterator[Any]:
    """Run an async job on this loop, one coroutine per item the window lets in: the same
    window, order and error handling as a map on a pool (``_window``), driven by coroutines.
    With ``inputs``, the window reads ``buffer``, which a read of ``inputs`` fills while the
    coroutines run: an input that waits holds up neither them nor the results."""
    running: dict[asyncio.Task[Any], Taken] = {}
    reading: asyncio.Task[Any] | None = None  # the next item's read, while it waits
    # While a trace is open: when each began, and how often it was retried.
    started: dict[asyncio.Task[Any], tuple[float, list[int]]] = {}
    wake = asyncio.Event()
    # The map ended (consumed, failed, cancelled, past its timeout): the coroutines that still
    # run are cancelled, and each is recorded as it ends, but nobody reads its result.
    closing = False

    def ended(task: asyncio.Task[Any]) -> None:
        batch = running.pop(task, None)
        if batch is None:
            return
        outcome = _outcome(task, closing)
        traced = started.pop(task, None)
        if traced is not None:
            began, tally = traced
            outcome.retries = tally[0]
            _trace.record_coroutine(job.fn, batch.first_index, began, outcome, options.trace)
        if closing:
            return
        window.done(batch, outcome)
        observer.progressed(1)
        wake.set()

    def read(done: asyncio.Task[tuple[Any, BaseException | None]]) -> None:
        nonlocal reading
        reading = None
        assert buffer is not None
        if done.cancelled():  # (the map is closing: see Inputs.read_next)
            return
        item, error = done.result()
        if error is None:
            buffer.put(item)
        else:
            buffer.fail(error)
        wake.set()

    observer.started(total)
    try:
        while True:
            while True:
                if buffer is not None and inputs is not None and not buffer.ready:
                    if reading is None and window.has_room():  # (one read at a time)
                        reading = asyncio.ensure_future(inputs.read_next())
                        reading.add_done_callback(read)
                    break
                if (taken := window.take()) is None:
                    break
                traced = _trace.active or options.trace is not None
                tally = [0] if traced else None
                task = asyncio.ensure_future(
                    run_item(job, taken.items[0], options.task_timeout, tally=tally)
                )
                running[task] = taken
                if tally is not None:
                    started[task] = (time.perf_counter(), tally)
                task.add_done_callback(ended)
            entry = window.pop()
            if entry is not None:
                batch, outcome = entry
                if outcome.errors:
                    for value in window.with_errors(batch, outcome):
                        yield value
                else:
                    yield outcome.values.pop()  # the consumer holds the only reference
                continue
            if window.finished():
                return
            wake.clear()  # no callback runs between the pop above and here: nothing is missed
            await _by_deadline(wake.wait(), options.deadline)
    finally:
        if reading is not None:
            reading.cancel()
        if inputs is not None:
            inputs.close()
        closing = True
        left = list(running)  # (each leaves it as it ends: ``ended`` records it then)
        for task in left:
            task.cancel()
        if left:
            await asyncio.gather(*left, return_exceptions=True)
        observer.finished()
        if options.trace is not None:
            options.trace.map_ended()


def _outcome(task: asyncio.Task[Any], closing: bool = False) -> Outcome:
    if task.cancelled():
        # The map ended and cancelled it; or, before that, the coroutine cancelled itself:
        # that item is cancelled, not the map.
        reason = CancelReason.ABANDONED if closing else CancelReason.CANCELLED
        return Outcome([None], {0: Cancelled(reason, "the item")})
    error = task.exception()
    if error is None:
        result = task.result()
        if isinstance(result, Ended):
            return Outcome([None], {0: result.error})
        return Outcome([result])
    return Outcome([None], {0: task_error(error)})  # (a StopAsyncIteration: as on threads)


async def _by_deadline(waiting: Awaitable[R], deadline: float | None) -> R:
    if deadline is None:
        return await waiting
    try:
        return await asyncio.wait_for(waiting, max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        raise TimeoutError("the map did not finish within its timeout") from None
