"""``plait.amap``'s input, read without blocking the event loop.

Each input is read as what it is: an async iterable with ``anext``, on the loop; one that
never waits (a list, a range: ``_window.instant``) right there; any other plain iterable (a
generator, a file, a queue's iterator) on a reader thread of its own, one item at a time, so
that the loop goes on while it waits. Several inputs give tuples, one item of each, and end
together, or raise ValueError as ``plait.map``'s do.

For a plain function, whose map runs on a plait pool and reads its input in a thread of its
own, an async input is read through ``bridged``: that thread asks the loop for each item.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Any

from ._window import instant

END = object()  # what ``read`` gives once the input has ended


def is_async_iterable(iterable: object) -> bool:
    return hasattr(iterable, "__aiter__")


class Reader:
    """Reads one input, item by item, without blocking the loop: ``await read()`` gives the
    next item, or END."""

    def __init__(self, iterable: Iterable[Any] | AsyncIterable[Any]) -> None:
        self._async: AsyncIterator[Any] | None = None
        self._plain: Iterator[Any] | None = None
        self._thread: ReaderThread | None = None
        if is_async_iterable(iterable):
            self._async = iterable.__aiter__()  # type: ignore[union-attr]
        else:
            self._plain = iter(iterable)  # type: ignore[arg-type]
            if not instant(self._plain):
                self._thread = ReaderThread(self._plain)

    @property
    def at_hand(self) -> bool:
        """Whether its items are read at once, right here (a list's, a range's)."""
        return self._async is None and self._thread is None

    def read(self) -> Awaitable[Any]:
        if self._async is not None:
            return anext(self._async, END)
        if self._thread is not None:
            return self._thread.read()
        return _ready(next(self._plain, END))  # type: ignore[arg-type]

    def close(self) -> None:
        """No more reads: its reader thread, if any, ends after the read it is in (a read that
        waits for good keeps it, a daemon, waiting)."""
        if self._thread is not None:
            self._thread.close()


async def _ready(item: Any) -> Any:
    return item


class ReaderThread:
    """A daemon thread that reads a plain iterator an item at a time, as the loop asks: an
    input that may wait, or a map's results (``_amap._from_blocking``)."""

    def __init__(self, iterator: Iterator[Any], name: str = "plait-amap-input") -> None:
        self._iterator = iterator
        self._name = name
        # (A read's outcome is its item and its error, set as the future's result: an error
        # the future carried would be taken for its own, a CancelledError for its cancellation.)
        self._asks: queue.SimpleQueue[asyncio.Future[tuple[Any, BaseException | None]] | None]
        self._asks = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._in_next = False  # it is reading the input now (which may wait for good)
        self._lock = threading.Lock()  # (between the check of a read's ask and _in_next)

    async def read(self) -> Any:
        item, error = await self.ask()
        if error is not None:
            raise error
        return item

    def ask(self) -> asyncio.Future[tuple[Any, BaseException | None]]:
        """The next read's outcome, (item, None) or (None, error), as a future: awaited where
        the error is to be raised (a task of its own would hand a Ctrl-C to the loop)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Any, BaseException | None]] = loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()
        self._asks.put(future)
        return future

    def close(self) -> None:
        """Let the thread go; wait for it unless it is in a read, which may never return."""
        if self._thread is not None:
            with self._lock:
                self._asks.put(None)
                reading = self._in_next
            if not reading:  # (the reads asked for before were cancelled: see _coroutines)
                self._thread.join()  # (at once: it reads nothing more)

    def _serve(self) -> None:
        while (future := self._asks.get()) is not None:
            with self._lock:
                if future.cancelled():  # (asked for by a map that ended meanwhile)
                    continue
                self._in_next = True
            outcome: tuple[Any, BaseException | None]
            try:
                outcome = (next(self._iterator, END), None)
            except BaseException as exc:  # (the input's error: the map raises it in turn)
                outcome = (None, exc)
            with self._lock:  # (before the loop hears of it: close() then waits for us)
                self._in_next = False
            _settle(future, outcome)
            del future, outcome


async def off_loop(fn: Callable[[], object]) -> None:
    """``fn()`` on a daemon thread of its own, waited for without blocking the loop (closing a
    map may wait for its workers; a daemon does not hold up the interpreter's exit)."""
    future: asyncio.Future[tuple[Any, BaseException | None]]
    future = asyncio.get_running_loop().create_future()

    def run() -> None:
        try:
            fn()
        except BaseException as exc:
            _settle(future, (None, exc))
        else:
            _settle(future, (None, None))

    thread = threading.Thread(target=run, name="plait-amap-close", daemon=True)
    thread.start()
    _, error = await future
    thread.join()  # (at once: it has only to return)
    if error is not None:
        raise error


def _settle(future: asyncio.Future[Any], outcome: tuple[Any, BaseException | None]) -> None:
    def settle() -> None:
        if not future.done():  # (else cancelled: the map ended meanwhile)
            future.set_result(outcome)

    with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
        future.get_loop().call_soon_threadsafe(settle)


class Inputs:
    """A map's inputs, read together: an item of each (a tuple, when several), or END once
    they end, or ValueError when one ends before the others."""

    def __init__(self, iterables: tuple[Any, ...], where: str) -> None:
        self._readers = [Reader(iterable) for iterable in iterables]
        self._where = where

    @property
    def at_hand(self) -> bool:
        return all(reader.at_hand for reader in self._readers)

    async def read_next(self) -> tuple[Any, BaseException | None]:
        """The next item (or END), or the input's error: whatever it raised, a CancelledError
        or a KeyboardInterrupt too, which must reach the map's consumer as the input's (not
        end the task that reads, as if the map were being cancelled)."""
        try:
            return await self.read(), None
        except BaseException as exc:
            task = asyncio.current_task()
            if isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling():
                raise  # (the map is closing: this read is cancelled)
            return None, exc

    async def read(self) -> Any:
        if len(self._readers) == 1:
            return await self._readers[0].read()
        items = [await reader.read() for reader in self._readers]
        ended = [item is END for item in items]
        if all(ended):
            return END
        if any(ended):
            raise ValueError(
                f"{self._where}: the iterables have different lengths (iterable "
                f"#{ended.index(True) + 1} ended first); pass iterables of equal length (cut "
                "the longer ones with itertools.islice if that is what you mean)"
            )
        return tuple(items)

    def close(self) -> None:
        for reader in self._readers:
            reader.close()


class Buffer(Iterator[Any]):
    """What a map's window reads (``MapWindow``'s source) when its input is read by ``Inputs``:
    the items read ahead, then the input's end or its error."""

    def __init__(self) -> None:
        self._items: deque[Any] = deque()
        self._error: BaseException | None = None
        self.ended = False

    @property
    def ready(self) -> bool:
        """Whether the window may read: an item, or the input's end, is at hand."""
        return bool(self._items) or self.ended

    def put(self, item: Any) -> None:
        if item is END:
            self.ended = True
        else:
            self._items.append(item)

    def fail(self, error: BaseException) -> None:
        self._error = error
        self.ended = True

    def __next__(self) -> Any:
        if self._items:
            return self._items.popleft()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        raise StopIteration


def bridged(
    iterable: AsyncIterable[Any], loop: asyncio.AbstractEventLoop, pending: list[Future[Any]]
) -> Iterator[Any]:
    """An async iterable as a plain iterator, for a thread other than the loop's: each item is
    read on ``loop``; ``pending`` holds the read under way, for a cancellation to cancel."""
    iterator = iterable.__aiter__()
    while True:
        future = asyncio.run_coroutine_threadsafe(_next_or_end(iterator), loop)
        pending[:] = [future]
        try:
            item = future.result()
        finally:
            pending.clear()
        if item is END:
            return
        yield item


async def _next_or_end(iterator: AsyncIterator[Any]) -> Any:
    return await anext(iterator, END)
