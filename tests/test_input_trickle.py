"""An input that trickles in: the results ready are handed out before the map waits for more
of it, not held back until a whole batch of items has come."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import plait

pytestmark = pytest.mark.timeout(60)

LATE = 1.0  # seconds the feeder waits for a result before it feeds the next item anyway


def double(x: int) -> int:
    return 2 * x


class Feeder:
    """Feeds item k once the consumer got result k - 2 (a stream that runs at most two items
    ahead of what was done with it: the map may wait for one item while it holds the result
    of the one before); after ``LATE`` seconds it feeds the item anyway, counting it late."""

    def __init__(self, count: int) -> None:
        self.gate: queue.Queue[Any] = queue.Queue()
        self.got: queue.Queue[int] = queue.Queue()
        self.count = count
        self.late = 0
        self.thread = threading.Thread(target=self._feed)
        self.gate.put(0)
        self.gate.put(1)
        self.thread.start()

    def _feed(self) -> None:
        for k in range(2, self.count):
            try:
                self.got.get(timeout=LATE)
            except queue.Empty:
                self.late += 1
            self.gate.put(k)

    def items(self) -> Iterator[int]:
        for _ in range(self.count):
            yield self.gate.get(timeout=30)


@pytest.mark.parametrize("backend", ["thread", "process", "auto"])
def test_results_are_handed_out_before_the_map_waits_for_more_input(backend: str) -> None:
    """Before, the map read a whole batch of the input (its batches grow to thousands of
    items for quick work) while the results ready waited: every item came late here. Now
    the first read that waits (while results are ready) shows an input that trickles in, and
    from then on a batch is one item: nothing more is late."""
    feeder = Feeder(20)
    results = []
    for result in plait.map(double, feeder.items(), backend=backend, workers=2):
        results.append(result)
        feeder.got.put(result)
    feeder.thread.join()
    assert results == [2 * k for k in range(20)]
    # Until the input was seen to trickle, a batch of a few items waited for them (each came
    # late); none after it. (Before: 18 of 20 late, in batches growing to 16 and more.)
    assert feeder.late <= 6


def test_an_input_that_fails_once_it_trickles_raises_after_the_results_before_it() -> None:
    feeder = Feeder(8)

    def items() -> Iterator[int]:
        yield from feeder.items()
        raise OSError("the stream broke")

    results = []
    with pytest.raises(OSError, match="the stream broke") as caught:
        for result in plait.map(double, items(), backend="thread", workers=2):
            results.append(result)
            feeder.got.put(result)
    feeder.thread.join()
    assert results == [2 * k for k in range(8)]
    assert "plait: raised by the input after 8 items" in caught.value.__notes__


def test_an_input_that_is_slow_but_steady_keeps_its_batches() -> None:
    """A few hundred items a second or more is an input that is slow, not one that trickles
    in: its batches still grow (one item a batch would cost more than the input)."""
    pause = threading.Event()

    def items() -> Iterator[int]:
        for x in range(400):
            pause.wait(0.0005)  # (never set: half a millisecond an item)
            yield x

    with plait.trace() as trace:
        assert list(plait.map(double, items(), backend="thread", workers=2)) == [
            2 * x for x in range(400)
        ]
    assert max(batch.items for batch in trace.batches) >= 16


def test_a_fast_input_is_read_in_batches_in_the_consumers_thread() -> None:
    readers: list[str] = []

    def items() -> Iterator[int]:
        for x in range(20_000):
            if x % 1000 == 0:
                readers.append(threading.current_thread().name)
            yield x

    with plait.trace() as trace:
        total = sum(plait.map(double, items(), backend="thread", workers=2))
    assert total == 2 * sum(range(20_000))
    assert set(readers) == {threading.current_thread().name}
    assert max(batch.items for batch in trace.batches) >= 1024


def a_window(source: Iterator[int], size: int) -> Any:
    from plait._chunking import ChunkSizer
    from plait._window import MapWindow

    return MapWindow(
        source,
        ChunkSizer("thread", 1, fixed=size),
        ordered=True,
        raise_errors=True,
        max_batches=4,
        max_items=10_000,
    )


def test_a_batch_is_read_in_parts_and_ends_at_the_first_that_waited() -> None:
    """(A batch of 16 was read at once: an input that gives its next item only once the
    consumer had a result waited for 16 items, each late, even under trickle detection:
    it came after the read. Reading in parts of 1, 2, 4, ... a read that waits is seen
    after one item.)"""
    parts: list[int] = []

    def waited(seconds: float, items: int) -> bool:
        parts.append(items)
        return len(parts) == 3  # (the third part waited, results waiting meanwhile)

    window = a_window(iter(range(100)), size=16)
    taken = window.take(waited)
    assert taken.items == list(range(7))  # parts of 1, 2 and 4
    assert parts == [1, 2, 4]
    assert window.trickling
    assert window.take(waited).items == [7]  # one at a time from now on


def test_a_batch_read_in_parts_ends_with_its_input() -> None:
    window = a_window(iter(range(5)), size=16)
    assert window.take(lambda seconds, items: False).items == list(range(5))
    assert not window.trickling
    assert window.take(lambda seconds, items: False) is None


def steady(count: int, every: float, read: list[int]) -> Iterator[int]:
    """An input that comes steadily, an item every ``every`` seconds (a stream of messages):
    too fast to trickle in (the map reads it in batches), and ``read`` says how far it got."""
    for k in range(count):
        time.sleep(every)
        read.append(k)
        yield k


@pytest.mark.parametrize("backend", ["thread", "auto"])
def test_a_steady_input_is_not_read_a_whole_batch_ahead_of_its_first_result(
    backend: str,
) -> None:
    """An item every 2 ms (not 5: it never counts as trickling in) of quick work: its batches
    would grow to 4,096 items, and the first result waited for a whole batch's read (8 s).
    A batch's read now ends after READ_AT_MOST with what it read, and the results ready are
    handed out before the next read. (A busy machine reads fewer items in that time, never
    more.)"""
    read: list[int] = []
    kwargs: dict[str, Any] = {} if backend == "auto" else {"backend": backend, "workers": 2}
    with plait.map(double, steady(600, 0.002, read), **kwargs) as results:
        iterator = iter(results)
        assert next(iterator) == 0
        # (READ_AT_MOST is 10 items here: a read of 1 + 2 + 4 + 8 + 16; on threads, the window
        # may read a few batches ahead while the first runs)
        assert len(read) < 200, len(read)
        for k in range(1, 600):
            assert next(iterator) == 2 * k
            if k % 100 == 0:  # never thousands ahead of what was handed out
                assert len(read) - k < 200, (k, len(read))
        assert next(iterator, None) is None
