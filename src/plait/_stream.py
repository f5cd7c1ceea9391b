"""A map's results, as its consumer takes them: ``MapIterator``, what ``plait.map`` returns,
and ``stream``, which turns a ``MapRun``'s batches into one iterator that runs no Python code
per value."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from contextlib import suppress
from itertools import chain, repeat, starmap
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from ._plan import Plan
    from ._scheduler import MapRun

R = TypeVar("R")


def stream(run: MapRun) -> tuple[Iterator[Any], Generator[Iterable[Any], None, None]]:
    """The results, one by one, and the generator of batches behind them: closing that
    generator (or losing both) closes the run.

    The results are ``chain.from_iterable`` over one iterator per batch, so that handing out
    a value runs no Python code: only reaching the next batch does. Each value leaves its
    batch's list as it is handed out (popped from the reversed list), so the consumer holds
    the only reference to a result it was given, as ``concurrent.futures`` promises: a large
    result is freed as soon as it is dropped. A map that runs inline hands out lazy batches
    instead (``MapRun.lazily``): generators that run each item as its result is taken.
    """
    batches = _batches(run)
    return chain.from_iterable(_OneReader(batches)), batches


class _OneReader:
    """The batches, read by one thread at a time, or the map ends loudly.

    A map's results are one iterator, the ``chain`` over its batches, whose state no lock
    guards: two threads reading it at once, one of them waiting for the next batch, once made
    the other's ``next`` end the chain for good (the generator "already executing"), and both
    loops end as if the results were all there, 199,999 of 200,000 lost. No lock in ``chain``
    can make it safe without Python code at every value; so a second thread that asks for the
    next batch while the first one waits for it gets a RuntimeError, and so does the first,
    once its batch comes: the map ends, and nobody takes it for whole. (Two threads that take
    values from one batch as it is handed out share it safely: each value is taken once.)
    """

    __slots__ = ("_batches", "_reading", "_two")

    def __init__(self, batches: Generator[Iterable[Any], None, None]) -> None:
        self._batches = batches
        self._reading = threading.Lock()
        self._two = False

    def __iter__(self) -> _OneReader:
        return self

    def __next__(self) -> Iterable[Any]:
        if not self._reading.acquire(blocking=False):
            self._two = True
            raise _read_by_two()
        try:
            batch = next(self._batches)
        finally:
            self._reading.release()
        if self._two:
            self._batches.close()  # (the map ends: what was read and not handed out is dropped)
            raise _read_by_two()
        return batch


def _read_by_two() -> RuntimeError:
    return RuntimeError(
        "plait: two threads read a map's results at once; a map's results are one iterator, "
        "read by one thread at a time (as a generator's); the map has ended. To share the work, "
        "give each thread a map of its own, or hand the results on through a queue.Queue"
    )


def _batches(run: MapRun) -> Generator[Iterable[Any], None, None]:
    handing_out: repeat[tuple[()]] | None = None
    values: list[Any] = []
    lazy: Iterator[Any] | None = None
    try:
        while True:
            lazy = run.lazily()
            if lazy is not None:
                yield lazy
                if run.closed:  # an item's error ended the map (errors="raise"), or Ctrl-C
                    return
                continue
            entry = run.next_batch()
            if entry is None:
                return
            task, outcome = entry
            outcome.load()  # here, in the consumer's thread (see Task.owner_loads)
            if outcome.errors:
                # One value at a time: a failed item raised here (errors="raise") ends this
                # generator, and so the run, at once.
                for value in run.with_errors(task, outcome):
                    yield (value,)
            else:
                values = outcome.values
                values.reverse()
                handing_out = repeat((), len(values))
                yield starmap(values.pop, handing_out)
    finally:
        if handing_out is not None:  # closed amid a batch: the rest of it is not handed out
            deque(handing_out, maxlen=0)
            values.clear()
        if isinstance(lazy, Generator):  # (... nor run)
            with suppress(ValueError):  # running: close() from inside an item, or elsewhere
                lazy.close()
        run.close()


class MapIterator(Generic[R]):
    """The lazy iterator ``plait.map`` and ``Pool.map`` return; also a context manager.

    Nothing runs until the first ``next()``. ``close()``, leaving the ``with`` block, or
    dropping the last reference stop the work and release the workers; so does breaking out
    of (or an exception in) a ``for`` loop over a map not kept in a variable, which drops it.
    One kept in a variable lives on after a ``break``, as a generator does, until one of those.
    Like a generator's, its results are for one thread at a time (see ``_stream._OneReader``).

    ``iter()`` hands out the underlying iterator rather than ``self``: a ``for`` loop then
    runs no Python code per item (see ``stream``) instead of an extra method call, and since
    that iterator does not refer back to this object, losing the last reference still closes
    it promptly.
    """

    def __init__(self, run: MapRun) -> None:
        self._run = run
        results, self._batches = stream(run)
        self._results: Iterator[R] = results

    def __iter__(self) -> Iterator[R]:
        return self._results

    def __next__(self) -> R:
        return next(self._results)

    @property
    def plan(self) -> Plan:
        """Where this map runs and why: ``str(results.plan)`` reads as one line, for
        example ``process x 2: it computes holding the GIL (...)``. With
        ``backend="auto"`` it is ``Plan("auto", ..., "measuring its first items")`` until
        the first items were measured."""
        return self._run.current_plan()

    def close(self) -> None:
        """Stop the map now and release its workers. Safe to call more than once."""
        self._batches.close()
        self._run.close()  # the generator may never have started

    def abort(self) -> bool:
        """Make a ``next()`` waiting in another thread raise ``plait.Cancelled`` now; the
        iterator is then closed as usual. Safe from any thread. Running items are told to
        stop, and nothing more of the map starts. Its trace (``trace=``) is written as it is
        closed: by the ``next()`` that raises, ``close()``, or at the latest as the program
        exits. Returns whether that thread is reading the input now, which no abort can end
        (it raises once the read is over)."""
        return self._run.abort()

    def __enter__(self) -> MapIterator[R]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
