"""The scheduler and its window, driven deterministically: no threads, no sleeps.

``FakeBackend`` holds what it is given; it finishes batches only when the consumer would wait
(its ``blocking()`` hook), in an order the test chooses. So every test here sees exactly which
batches were submitted, how much of the input was read, and in which order results come back.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import plait
from plait._backends._base import Unprobed
from plait._chunking import ChunkSizer
from plait._errors import PoolClosed
from plait._events import MapObserver
from plait._plan import Plan
from plait._scheduler import BATCHES_PER_WORKER, MapRun
from plait._stream import MapIterator
from plait._task import Job, Kind, Outcome, Task, execute
from plait._window import MapWindow, Taken

pytestmark = pytest.mark.timeout(30)


class FakeBackend(Unprobed):
    """A backend in memory. ``finish_order`` picks which pending batches to end (and in which
    order) each time the consumer would otherwise wait."""

    name = "thread"
    batch_limit: int | None = None

    def __init__(
        self,
        workers: int = 2,
        finish_order: Callable[[list[Task]], list[Task]] = lambda pending: pending,
    ) -> None:
        self.workers = workers
        self.pending: list[Task] = []
        self.submitted: list[Task] = []
        self.skipped: list[Task] = []
        self.closed = False
        self.finish_order = finish_order

    def submit(self, task: Task) -> None:
        if self.closed:
            raise PoolClosed("cannot submit work: the pool is shut down")
        self.pending.append(task)
        self.submitted.append(task)

    def run_pending(self) -> None:
        order = self.finish_order(list(self.pending))
        for task in order:
            self.pending.remove(task)
            if not task.start():
                self.skipped.append(task)
                continue
            task.finish(task, execute(task.job.fn, task.job.kind, task.items))

    @contextmanager
    def blocking(self) -> Iterator[None]:
        self.run_pending()
        yield

    def plan(self, job: Job) -> Plan | None:
        return None  # where its work runs was chosen by the caller

    def release(self, job: Job) -> None:
        pass

    def shutdown(self, *, wait: bool, cancel_pending: bool) -> None:
        self.closed = True

    def terminate(self, *, grace: bool = True) -> None:
        self.closed = True

    def started(self) -> bool:
        return True


class Counting:
    """An input that counts how many items were read from it."""

    def __init__(self, items: Iterator[Any]) -> None:
        self.read = 0
        self._items = items

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        item = next(self._items)
        self.read += 1
        return item


def open_run(
    backend: FakeBackend,
    source: Iterator[Any],
    *,
    fn: Callable[[Any], Any] = lambda x: x * 10,
    chunksize: int = 1,
    ordered: bool = True,
    errors: Any = "raise",
    closed: list[bool] | None = None,
) -> MapIterator[Any]:
    run = MapRun(
        backend,
        Job(fn, Kind.MAP),
        source,
        sizer=ChunkSizer("thread", backend.workers, fixed=chunksize),
        ordered=ordered,
        errors=errors,
        deadline=None,
        observer=MapObserver(),
        on_close=(
            (lambda complete, hurried: closed.append(complete))
            if closed is not None
            else lambda complete, hurried: None
        ),
        total=None,
    )
    return MapIterator(run)


def test_the_window_bounds_what_is_read_and_submitted() -> None:
    backend = FakeBackend(workers=3)
    source = Counting(itertools.count())
    results = open_run(backend, source)
    window = BATCHES_PER_WORKER * backend.workers
    assert next(results) == 0
    assert len(backend.submitted) == window  # read ahead exactly one window
    assert source.read == window
    assert [next(results) for _ in range(5)] == [10, 20, 30, 40, 50]
    assert source.read == window + 5  # one more read per result handed out, no more
    results.close()


def test_out_of_order_batches_come_back_in_order() -> None:
    backend = FakeBackend(workers=2, finish_order=lambda pending: pending[::-1])
    results = open_run(backend, iter(range(20)), chunksize=3)
    assert list(results) == [x * 10 for x in range(20)]


def test_unordered_results_come_as_their_batches_end() -> None:
    backend = FakeBackend(workers=2, finish_order=lambda pending: pending[::-1])
    results = open_run(backend, iter(range(8)), ordered=False)
    # The first window of four items ends last-first; then the next four the same way.
    assert list(results) == [30, 20, 10, 0, 70, 60, 50, 40]


def test_closing_amid_a_batch_hands_out_nothing_more_of_it() -> None:
    """A ``for`` loop holds the iterator ``iter()`` gave it; a ``close()`` inside the loop
    ends that loop at its next step, even with the rest of a batch at hand."""
    closed: list[bool] = []
    results = open_run(FakeBackend(), iter(range(100)), chunksize=10, closed=closed)
    seen = []
    for value in results:
        seen.append(value)
        results.close()
    assert seen == [0]
    assert closed == [False]
    with pytest.raises(StopIteration):
        next(results)


def test_a_failing_item_closes_the_run_as_it_is_raised() -> None:
    """errors="raise": the run closes (its workers are released) when the failure reaches
    the consumer, not when the iterator is dropped."""

    def fail_on_three(x: int) -> int:
        if x == 3:
            raise ValueError("bad item 3")
        return x

    closed: list[bool] = []
    results = open_run(FakeBackend(), iter(range(10)), fn=fail_on_three, chunksize=5, closed=closed)
    with pytest.raises(ValueError, match="bad item 3"):
        for _ in results:
            pass
    assert closed == [False]


def test_values_handed_out_from_a_batch_in_progress_come_in_order_once() -> None:
    results = open_run(FakeBackend(), iter(range(25)), chunksize=4)
    iterator = iter(results)
    assert [next(iterator) for _ in range(6)] == [0, 10, 20, 30, 40, 50]
    assert list(results) == [x * 10 for x in range(6, 25)]


def test_a_closed_map_skips_what_has_not_started_and_reads_no_further() -> None:
    backend = FakeBackend(workers=2, finish_order=lambda pending: pending[:1])
    source = Counting(itertools.count())
    closed: list[bool] = []
    results = open_run(backend, source, closed=closed)
    assert next(results) == 0
    read = source.read
    results.close()
    backend.finish_order = lambda pending: pending
    backend.run_pending()
    assert backend.skipped == backend.submitted[1:]  # not one of them ran
    assert source.read == read
    assert closed == [False]  # closed before completion: the pool terminates its workers


def test_a_completed_map_reports_completion() -> None:
    closed: list[bool] = []
    assert list(open_run(FakeBackend(), iter(range(5)), closed=closed)) == [0, 10, 20, 30, 40]
    assert closed == [True]


def test_a_failing_input_delivers_what_it_gave_then_raises() -> None:
    def source() -> Iterator[int]:
        yield from range(7)
        raise OSError("disk gone")

    results = open_run(FakeBackend(), source(), chunksize=3)
    got: list[int] = []
    with pytest.raises(OSError, match="disk gone") as caught:
        got.extend(results)
    assert got == [x * 10 for x in range(7)]
    assert "plait: raised by the input after 7 items" in caught.value.__notes__


def test_a_pool_closed_under_a_map_ends_it_after_the_batches_already_out() -> None:
    backend = FakeBackend(workers=1)
    results = open_run(backend, itertools.count(), chunksize=2)
    assert next(results) == 0  # two batches out: items 0-3
    backend.closed = True
    got: list[int] = []
    with pytest.raises(PoolClosed) as caught:
        got.extend(results)
    assert got == [10, 20, 30]
    assert (
        "plait: the map stopped after 4 items (items 4-5 were read from the input and not run)"
        in caught.value.__notes__
    )


def test_errors_return_puts_each_error_in_its_item_place() -> None:
    def fn(x: int) -> int:
        if x % 3 == 0:
            raise ValueError(x)
        return x

    backend = FakeBackend(finish_order=lambda pending: pending[::-1])
    results = list(open_run(backend, iter(range(7)), fn=fn, chunksize=2, errors="return"))
    assert [type(r) if isinstance(r, Exception) else r for r in results] == [
        ValueError, 1, 2, ValueError, 4, 5, ValueError,
    ]  # fmt: skip
    assert "plait: raised by item 3: 3" in results[3].__notes__


# -- the window alone --------------------------------------------------------------------------


def make_window(source: Iterator[Any], **kwargs: Any) -> MapWindow[Taken]:
    options: dict[str, Any] = {
        "ordered": True,
        "raise_errors": True,
        "max_batches": 2,
        "max_items": 100,
    }
    options.update(kwargs)
    return MapWindow(source, ChunkSizer("thread", 1, fixed=2), **options)


def test_the_window_takes_no_more_than_max_items() -> None:
    window = make_window(itertools.count(), max_batches=10, max_items=5)
    taken = [window.take() for _ in range(4)]
    assert [t.items if t else None for t in taken] == [[0, 1], [2, 3], [4, 5], None]


def test_the_window_waits_for_the_next_batch_in_order() -> None:
    window = make_window(iter(range(6)))
    first, second = window.take(), window.take()
    assert first is not None
    assert second is not None
    window.done(second, Outcome(list(second.items)))
    assert window.pop() is None  # the second may not overtake the first
    window.done(first, Outcome(list(first.items)))
    assert window.pop() == (first, Outcome(list(first.items)))
    assert window.pop() == (second, Outcome(list(second.items)))
    assert not window.finished()  # the input has not said it ended yet
    third = window.take()
    assert third == Taken(seq=2, first_index=4, items=[4, 5])
    assert window.take() is None  # the input ended
    assert not window.finished()  # the third batch is still out
    window.done(third, Outcome(list(third.items)))
    assert window.pop() == (third, Outcome(list(third.items)))
    assert window.finished()


def test_an_empty_input_is_finished_at_once() -> None:
    window = make_window(iter(()))
    assert window.take() is None
    assert window.finished()


@pytest.mark.timeout(60)
def test_amap_runs_on_the_same_window() -> None:
    """amap on an event loop honours the same ordering and error notes as a map on a pool."""
    import asyncio

    async def twice(x: int) -> int:
        await asyncio.sleep(0.001 * (5 - x % 5))  # later items end first
        if x == 7:
            raise KeyError(x)
        return 2 * x

    async def main() -> list[Any]:
        return await plait.amap(twice, range(12), workers=4, errors="return")

    results = asyncio.run(main())
    assert [r for i, r in enumerate(results) if i != 7] == [2 * x for x in range(12) if x != 7]
    assert isinstance(results[7], KeyError)
    assert "plait: raised by item 7: 7" in results[7].__notes__
