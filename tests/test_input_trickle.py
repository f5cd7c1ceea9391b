"""An input that trickles in: results that are ready are handed out while the map waits for
more input, not held back until the next item arrives."""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import plait
from plait._input import SLOW_INPUT

pytestmark = pytest.mark.timeout(60)

LATE = 2.0  # seconds the feeder waits for a result before it feeds the next item anyway


def double(x: int) -> int:
    return 2 * x


def fed(gate: queue.Queue[Any], count: int) -> Iterator[int]:
    for _ in range(count):
        yield gate.get(timeout=30)


class Feeder:
    """Feeds item k + 1 once the consumer got result k, as a stream whose next input depends
    on the last output would; and after ``LATE`` seconds anyway, counting that as late."""

    def __init__(self, count: int) -> None:
        self.gate: queue.Queue[Any] = queue.Queue()
        self.got: queue.Queue[int] = queue.Queue()
        self.count = count
        self.late = 0
        self.thread = threading.Thread(target=self._feed)
        self.gate.put(0)
        self.thread.start()

    def _feed(self) -> None:
        for k in range(1, self.count):
            try:
                self.got.get(timeout=LATE)
            except queue.Empty:
                self.late += 1
            self.gate.put(k)


@pytest.mark.parametrize("backend", ["thread", "process", "auto"])
def test_results_are_handed_out_while_the_input_waits_for_its_next_item(backend: str) -> None:
    """Before, the map read its next item in the consumer's thread while ready results
    waited: each result came only once the next item did (here: every item fed late)."""
    feeder = Feeder(6)
    results = []
    for result in plait.map(double, fed(feeder.gate, 6), backend=backend, workers=2):
        results.append(result)
        feeder.got.put(result)
    feeder.thread.join()
    assert results == [0, 2, 4, 6, 8, 10]
    # The first slow read (at least SLOW_INPUT, while a result waited) moved the input to a
    # thread of its own; after it, nothing was late.
    assert feeder.late <= 1 + (LATE < SLOW_INPUT)


def test_an_input_that_fails_after_it_moved_raises_after_the_results_before_it() -> None:
    gate: queue.Queue[Any] = queue.Queue()

    def items() -> Iterator[int]:
        yield 1
        yield gate.get(timeout=30)  # slow: results wait meanwhile
        yield gate.get(timeout=30)
        raise OSError("the stream broke")

    results = []
    mapped = iter(plait.map(double, items(), backend="thread", workers=2))
    feeding = threading.Timer(SLOW_INPUT * 2, gate.put, (2,))
    feeding.start()  # (the first result waits for it: the consumer's thread reads item 2)
    results.append(next(mapped))
    feeding.join()
    results.append(next(mapped))
    gate.put(3)
    with pytest.raises(OSError, match="the stream broke") as caught:
        results.extend(mapped)
    assert results == [2, 4, 6]
    assert "plait: raised by the input after 3 items" in caught.value.__notes__


def test_leaving_a_map_whose_input_waits_does_not_wait_for_the_input() -> None:
    """The thread reading ahead is in the input's own code: the map ends at once, the thread
    once the input gives its next item (or ends)."""
    gate: queue.Queue[Any] = queue.Queue()

    def items() -> Iterator[int]:
        yield 1
        yield gate.get(timeout=30)
        yield gate.get(timeout=30)  # the reader waits here as the map is left

    feeding = threading.Timer(SLOW_INPUT * 2, gate.put, (2,))
    feeding.start()
    with plait.map(double, items(), backend="thread", workers=2) as mapped:
        results = iter(mapped)
        assert next(results) == 2
        feeding.join()
        assert next(results) == 4
    readers = [t for t in threading.enumerate() if t.name == "plait-input"]
    assert len(readers) == 1  # (it waits in the input's gate.get)
    gate.put(3)  # the input gives its next item: the reader drops it and ends
    readers[0].join(10)
    assert not readers[0].is_alive()


def test_the_input_read_ahead_sees_the_consumers_context_variables() -> None:
    seen: list[str] = []
    where = contextvars.ContextVar("where", default="nowhere")
    gate: queue.Queue[Any] = queue.Queue()

    def items() -> Iterator[int]:
        yield 1
        yield gate.get(timeout=30)
        seen.extend([where.get(), threading.current_thread().name])
        yield 3

    where.set("the consumer's")
    feeding = threading.Timer(SLOW_INPUT * 2, gate.put, (2,))
    feeding.start()
    assert list(plait.map(double, items(), backend="thread", workers=2)) == [2, 4, 6]
    feeding.join()
    assert seen == ["the consumer's", "plait-input"]


def test_a_fast_input_is_read_in_the_consumers_thread() -> None:
    readers: list[str] = []

    def items() -> Iterator[int]:
        for x in range(20_000):
            if x % 1000 == 0:
                readers.append(threading.current_thread().name)
            yield x

    assert sum(plait.map(double, items(), backend="thread", workers=2)) == 2 * sum(range(20_000))
    assert set(readers) == {threading.current_thread().name}
