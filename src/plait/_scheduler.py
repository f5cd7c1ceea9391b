"""The engine behind every map: a bounded window of batches in flight, results in order.

    consumer thread                         backend (threads, or a dispatcher + processes)
    ───────────────                         ──────────────────────────────────────────────
    next(results)
      └─ top up: read the input lazily ──► submit(Task)  ──►  worker runs execute(batch)
         while the window has room                                   │
      └─ wait for the next batch  ◄──────── finish(task, outcome) ◄──┘  (any thread)
      └─ yield its values one by one

The input is read only in the consumer's thread, one batch at a time, and only while fewer than
``max_batches`` batches (and ``max_items`` items) are between "read" and "yielded": memory stays
flat on an endless generator, and a slow consumer slows the workers instead of filling memory.
In order mode a batch that finishes early waits in a small reorder buffer keyed by sequence
number, bounded by the same window.
"""

from __future__ import annotations

import reprlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar

from ._backends import Backend
from ._cancel import CancelToken
from ._chunking import ChunkSizer
from ._errors import Cancelled, CancelReason, PoolClosed
from ._events import MapObserver
from ._task import Job, Outcome, Task, copy_error, failed

R = TypeVar("R")

BATCHES_PER_WORKER = 2  # one running, one queued behind it: no worker waits for the consumer
MAX_ITEMS_IN_FLIGHT = 16384  # bounds memory when batches are large (tiny tasks): ~2 MiB

_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60


def open_input(iterables: tuple[Iterable[Any], ...], where: str) -> Iterator[Any]:
    """The items of a map: those of one iterable, or tuples of one item of each."""
    if len(iterables) == 1:
        return iter(iterables[0])
    return _zip_equal(iterables, where)


def _zip_equal(iterables: tuple[Iterable[Any], ...], where: str) -> Iterator[tuple[Any, ...]]:
    try:
        yield from zip(*iterables, strict=True)
    except ValueError as exc:
        # zip's own complaint is raised in this frame; an input's ValueError comes from deeper.
        tb = exc.__traceback__
        if tb is None or tb.tb_next is not None or not str(exc).startswith("zip() argument"):
            raise
        raise ValueError(
            f"{where}: the iterables have different lengths ({exc}); pass iterables of equal "
            "length (cut the longer ones with itertools.islice if that is what you mean)"
        ) from None


def describe_item(item: object) -> str:
    try:
        return _short.repr(item)
    except Exception:
        return f"<{type(item).__name__} object>"


class MapRun:
    """The state of one map: what was read, what is in flight, what is ready to yield."""

    def __init__(
        self,
        backend: Backend,
        job: Job,
        source: Iterator[Any],
        *,
        sizer: ChunkSizer,
        ordered: bool,
        errors: Literal["raise", "return"],
        deadline: float | None,
        observer: MapObserver,
        on_close: Callable[[bool], None],
        total: int | None,
        task_timeout: float | None = None,
    ) -> None:
        self._backend = backend
        self._job = job
        self._source = source
        self._sizer = sizer
        self._ordered = ordered
        self._raise = errors == "raise"
        self._deadline = deadline
        self._observer = observer
        self._on_close = on_close
        self._total = total
        self._task_timeout = task_timeout
        self._token = CancelToken()  # cancelled on close: running tasks can see it
        self._max_batches = BATCHES_PER_WORKER * backend.workers
        self._max_items = max(MAX_ITEMS_IN_FLIGHT, sizer.max_size)
        self._cond = threading.Condition(threading.Lock())
        # Filled by worker threads under _cond; emptied by the consumer.
        self._ready: dict[int, tuple[Task, Outcome]] = {}
        self._ready_unordered: deque[tuple[Task, Outcome]] = deque()
        # Touched by the consumer thread only.
        self._started = False
        self._exhausted = False
        self._input_error: Exception | None = None
        self._batches_out = 0
        self._items_out = 0
        self._next_seq = 0
        self._next_index = 0
        self._next_to_yield = 0
        self._complete = False  # every result was handed out: workers are idle
        self._aborted = False  # set by abort(), from any thread
        self.closed = False

    # -- consumer side ---------------------------------------------------------------------

    def next_batch(self) -> tuple[Task, Outcome] | None:
        """Top up the window, then wait for the next batch to yield (None: the map is done)."""
        if not self._started:
            self._started = True
            self._observer.started(self._total)
        self._top_up()
        with self._cond:
            entry = self._pop_ready()
        if entry is None:
            with self._backend.blocking():  # a task of the same pool may be what waits here
                entry = self._wait_for_batch()
            if entry is None:
                return None
        self._batches_out -= 1
        self._items_out -= len(entry[0].items)
        return entry

    def _wait_for_batch(self) -> tuple[Task, Outcome] | None:
        with self._cond:
            while True:
                entry = self._pop_ready()
                if entry is not None:
                    return entry
                if self._aborted:
                    raise Cancelled(CancelReason.ABANDONED, "the map")
                if self._exhausted and self._batches_out == 0:
                    if self._input_error is not None:
                        raise self._input_error
                    self._complete = True
                    return None
                self._wait()

    def _pop_ready(self) -> tuple[Task, Outcome] | None:
        if not self._ordered:
            return self._ready_unordered.popleft() if self._ready_unordered else None
        entry = self._ready.pop(self._next_to_yield, None)
        if entry is not None:
            self._next_to_yield += 1
        return entry

    def _wait(self) -> None:
        if self._deadline is None:
            self._cond.wait()
            return
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the map did not finish within its timeout")
        self._cond.wait(remaining)

    def _top_up(self) -> None:
        while (
            not self._exhausted
            and self._batches_out < self._max_batches
            and self._items_out < self._max_items
        ):
            size = self._sizer.next_size()
            items: list[Any] = []
            try:
                items.extend(islice(self._source, size))  # keeps what was read before a failure
            except Exception as exc:  # the input itself failed: raised after earlier results
                read = self._next_index + len(items)
                exc.add_note(f"plait: raised by the input after {read} items")
                self._input_error = exc
                self._exhausted = True
            if len(items) < size:
                self._exhausted = True
                if not items:
                    return
            self._sizer.taken(len(items))
            timed = self._task_timeout is not None
            task = Task(
                self._job,
                items,
                start=self._is_open,
                finish=self._finish,
                discard=self._dropped,
                seq=self._next_seq,
                first_index=self._next_index,
                timeout=self._task_timeout,
                token=CancelToken(self._token) if timed else self._token,
            )
            try:
                self._backend.submit(task)
            except PoolClosed as exc:  # shut down under us: deliver what is out, then say so
                exc.add_note(f"plait: the map stopped after {self._next_index} items")
                self._input_error = exc
                self._exhausted = True
                return
            self._next_seq += 1
            self._next_index += len(items)
            self._batches_out += 1
            self._items_out += len(items)

    def with_errors(self, task: Task, outcome: Outcome) -> Iterator[Any]:
        """Yield a batch that holds failures: raise the first, or yield exceptions as values."""
        for offset, value in enumerate(outcome.values):
            exc = outcome.errors.get(offset)
            if exc is None:
                yield value
                continue
            index = task.first_index + offset
            if any(note.startswith("plait: ") for note in getattr(exc, "__notes__", ())):
                copied = copy_error(exc)  # one exception object raised for several items
                if copied is not exc:
                    exc = copied
                    exc.__notes__ = [n for n in exc.__notes__ if not n.startswith("plait: raised")]
            item = describe_item(task.items[offset])
            exc.add_note(
                f"plait: raised by item {index}: {item}"
                if outcome.ran
                else f"plait: item {index} was not run: {item}"
            )
            if self._raise:
                raise exc
            yield exc

    def abort(self) -> None:
        """Stop from any thread, even while the consumer waits in ``next_batch`` (which then
        raises Cancelled): running tasks are told to stop. ``close()`` still releases the
        workers, from the consumer's side."""
        self._token.cancel(CancelReason.ABANDONED)
        with self._cond:
            self._aborted = True
            self._cond.notify_all()

    def close(self) -> None:
        """Stop: batches not yet started are skipped; running ones finish and are dropped."""
        if self.closed:
            return
        self.closed = True
        self._token.cancel(CancelReason.ABANDONED)
        with self._cond:
            self._ready.clear()
            self._ready_unordered.clear()
        try:
            self._on_close(self._complete)
        finally:
            if self._started:
                self._observer.finished()

    # -- worker side (any thread) ------------------------------------------------------------

    def _is_open(self) -> bool:
        return not self.closed

    def _dropped(self, task: Task) -> None:
        """A shutdown (``cancel_futures=True``, ``terminate()``) dropped the batch unstarted:
        its items fail with Cancelled, so the reader learns it instead of waiting for good."""
        self._finish(task, failed(len(task.items), _dropped_unstarted, ran=False))

    def _finish(self, task: Task, outcome: Outcome) -> None:
        with self._cond:
            if outcome.measured:
                self._sizer.observe(len(task.items), outcome.elapsed, outcome.sent_bytes)
            if self.closed:
                return
            if self._ordered:
                self._ready[task.seq] = (task, outcome)
            else:
                self._ready_unordered.append((task, outcome))
            self._cond.notify()
        self._observer.progressed(len(task.items))


def _dropped_unstarted() -> BaseException:
    return Cancelled(CancelReason.SHUT_DOWN, "the item")


def stream(run: MapRun) -> Iterator[Any]:
    """The results, one by one. Closing this generator (or losing it) closes the run."""
    try:
        while (entry := run.next_batch()) is not None:
            task, outcome = entry
            if outcome.errors:
                yield from run.with_errors(task, outcome)
            else:
                yield from outcome.values
    finally:
        run.close()


class MapIterator(Generic[R]):
    """The lazy iterator ``plait.map`` and ``Pool.map`` return; also a context manager.

    Nothing runs until the first ``next()``. Breaking out of a loop, ``close()``, leaving the
    ``with`` block, an exception in the consumer, or dropping the last reference all stop the
    work and release the workers.

    ``iter()`` hands out the underlying generator rather than ``self``: a ``for`` loop then
    pays one generator resume per item instead of an extra method call, and since the generator
    does not refer back to this object, losing the last reference still closes it promptly.
    """

    def __init__(self, run: MapRun) -> None:
        self._run = run
        self._results: Iterator[R] = stream(run)

    def __iter__(self) -> Iterator[R]:
        return self._results

    def __next__(self) -> R:
        return next(self._results)

    def close(self) -> None:
        """Stop the map now and release its workers. Safe to call more than once."""
        self._results.close()  # type: ignore[attr-defined]
        self._run.close()  # the generator may never have started

    def abort(self) -> None:
        """Make a ``next()`` waiting in another thread raise ``plait.Cancelled`` now; the
        iterator is then closed as usual. Safe from any thread."""
        self._run.abort()

    def __enter__(self) -> MapIterator[R]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
