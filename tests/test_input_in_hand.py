"""An input fed by the map's own items (a crawler's queue): the items read before a read that
waits are sent to run meanwhile, not held until the batch is whole, which the input waits for.

Each input here gives up after ``WAIT`` seconds without an item, raising: a map that holds
the items the input waits for fails then, instead of waiting for good (every one of these
tests did so before: 5 s, then the input's TimeoutError or queue.Empty)."""

from __future__ import annotations

import asyncio
import os
import queue
import select
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import plait
from plait import _in_hand
from plait._backends import _auto, _probe
from plait._chunking import ChunkSizer
from plait._plan import Plan
from plait._task import Outcome
from plait._window import MapWindow

pytestmark = pytest.mark.timeout(60)

WAIT = 5.0  # seconds an input waits for its next item before it gives up
TREE = 300  # items crawled: item n finds 2n + 1 and 2n + 2


def found_by(n: int) -> list[int]:
    return [k for k in (2 * n + 1, 2 * n + 2) if k < TREE]


class Fifo:
    """A named pipe: the map's input reads it a line an item, and an item (in a worker
    process too) writes the next items to it, with ``tell``."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path = str(path)
        # Read and write: a worker that opens it to write never waits for a reader, and a read
        # waits for a line, never sees the end.
        self._fd = os.open(path, os.O_RDWR)
        self._buffer = b""

    def items(self, count: int) -> Iterator[tuple[str, int]]:
        """``count`` items, each ``(path, number)``, as lines come."""
        for _ in range(count):
            yield self.path, self.next_line()

    def next_line(self) -> int:
        while b"\n" not in self._buffer:
            ready, _, _ = select.select([self._fd], [], [], WAIT)
            if not ready:
                raise TimeoutError(f"no item came for {WAIT} s: the map held those it waits for")
            self._buffer += os.read(self._fd, 4096)
        line, self._buffer = self._buffer.split(b"\n", 1)
        return int(line)

    def close(self) -> None:
        os.close(self._fd)


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Fifo]:
    pipe = Fifo(tmp_path / "fifo")
    yield pipe
    pipe.close()


def tell(path: str, numbers: list[int]) -> None:
    """Write ``numbers`` to the pipe at ``path``, in one write (atomic, under PIPE_BUF)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, "".join(f"{n}\n" for n in numbers).encode())
    finally:
        os.close(fd)


def crawl(item: tuple[str, int]) -> int:
    path, n = item
    if found := found_by(n):
        tell(path, found)
    return n


def crawled_in_order(numbers: list[int]) -> None:
    """Every item once, each parent before what it found."""
    assert sorted(numbers) == list(range(TREE))
    place = {n: i for i, n in enumerate(numbers)}
    assert all(place[n] < place[k] for n in range(TREE) for k in found_by(n))


@pytest.mark.parametrize("backend", ["thread", "process", "auto"])
def test_a_crawler_whose_items_feed_its_input_runs_to_its_end(fifo: Fifo, backend: str) -> None:
    tell(fifo.path, [0])
    results = list(plait.map(crawl, fifo.items(TREE), backend=backend, workers=2))
    crawled_in_order(results)


def test_a_crawler_on_a_queue_runs_to_its_end() -> None:
    """The crawler of the issue: a queue read as the input, filled by the items, a sentinel
    once the last found nothing more; results in the order the items were read."""
    links: queue.Queue[int | None] = queue.Queue()
    left = [1]  # items found and not yet done
    lock = threading.Lock()
    read: list[int] = []

    def visit(n: int) -> int:
        with lock:
            for k in found_by(n):
                links.put(k)
            left[0] += len(found_by(n)) - 1
            if left[0] == 0:
                links.put(None)
        return 2 * n

    def items() -> Iterator[int]:
        while (n := links.get(timeout=WAIT)) is not None:
            read.append(n)
            yield n

    links.put(0)
    results = list(plait.map(visit, items(), workers=2))
    assert results == [2 * n for n in read]
    crawled_in_order(read)


def test_amap_of_a_plain_function_crawls_to_its_end(fifo: Fifo) -> None:
    async def main() -> list[int]:
        return [n async for n in plait.amap(crawl, fifo.items(TREE), workers=2)]

    tell(fifo.path, [0])
    crawled_in_order(asyncio.run(main()))


def go_on(item: tuple[str, int]) -> int:
    path, n = item
    if n == 0:
        tell(path, [1])
    return n


@pytest.mark.parametrize("backend", ["thread", "process", "auto"])
def test_an_input_that_waits_for_its_first_item_to_run(fifo: Fifo, backend: str) -> None:
    """Batches of 4: the input's second item comes once the first ran."""

    def items() -> Iterator[tuple[str, int]]:
        yield fifo.path, 0
        fifo.next_line()  # (item 0 writes it)
        for n in range(1, 10):
            yield fifo.path, n

    results = plait.map(go_on, items(), backend=backend, workers=2, chunksize=4)
    assert list(results) == list(range(10))


def test_a_map_run_inline_sends_what_it_read_to_run_while_its_input_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Planned inline, a map runs its batches in the consumer's thread, lazily: one whose read
    waits for an item it holds has that item sent to run on a thread (not in the watcher's:
    it is one for the program, and an item there that runs a map of its own waited for good)."""
    monkeypatch.setattr(_probe, "PROBE_ITEMS", 4)
    monkeypatch.setattr(_probe, "PROBE_SECONDS", float("inf"))
    monkeypatch.setattr(_auto, "tiny_plan", lambda measured, **_: Plan("inline", 1, "a test"))
    last = 9_049
    ran_last = threading.Event()
    ran_in: list[str] = []

    def fn(x: int) -> int:
        if x == last:
            ran_in.append(threading.current_thread().name)
            ran_last.set()
        return 2 * x

    def items() -> Iterator[int]:
        yield from range(last + 1)
        if not ran_last.wait(WAIT):
            raise TimeoutError(f"item {last} did not run for {WAIT} s")
        yield from range(last + 1, 10_000)

    results = plait.map(fn, items(), chunksize=100)
    assert list(results) == [2 * x for x in range(10_000)]
    assert results.plan.backend == "inline", str(results.plan)
    assert len(ran_in) == 1
    assert ran_in[0].startswith("plait-thread"), ran_in


def test_an_input_that_fails_after_items_were_sent_names_every_item_it_gave() -> None:
    links: queue.Queue[int] = queue.Queue()

    def fn(x: int) -> int:
        links.put(x)
        return x

    def items() -> Iterator[int]:
        yield 0
        yield 1
        links.get(timeout=WAIT)  # (item 0 ran)
        yield 2
        raise OSError("the stream broke")

    results: list[int] = []
    with pytest.raises(OSError, match="the stream broke") as caught:
        results.extend(plait.map(fn, items(), backend="thread", workers=2, chunksize=8))
    assert results == [0, 1, 2]
    assert "plait: raised by the input after 3 items" in caught.value.__notes__


def test_an_abort_while_the_input_waits_says_the_consumer_reads_it() -> None:
    """The items in hand ran meanwhile; the abort still ends the map once the read is over."""
    ran = threading.Event()
    release = threading.Event()

    def fn(x: int) -> int:
        if x == 1:
            ran.set()
        return x

    def items() -> Iterator[int]:
        yield 0
        yield 1
        assert release.wait(30)
        yield 2

    results = plait.map(fn, items(), backend="thread", workers=2, chunksize=8)
    reader = threading.Thread(target=lambda: read_all(results, taken))
    taken: list[Any] = []
    reader.start()
    try:
        assert ran.wait(WAIT)  # (sent from the read that waits)
        assert results.abort()  # the consumer reads the input
    finally:
        release.set()
        reader.join(30)
    # (The batch that ran meanwhile may be handed out as the read ends, as any ready one is.)
    assert isinstance(taken[-1], plait.Cancelled)
    assert taken[:-1] in ([], [0, 1])


def read_all(results: Any, taken: list[Any]) -> None:
    try:
        taken.extend(results)
    except plait.Cancelled as exc:
        taken.append(exc)


def test_a_list_or_a_range_is_not_watched() -> None:
    assert list(plait.map(abs, range(-5000, 0), backend="thread")) == list(range(5000, 0, -1))
    assert sum(plait.map(abs, list(range(5000)))) == sum(range(5000))
    assert not [t for t in threading.enumerate() if t.name == _in_hand.NAME]


# -- the window, step by step --------------------------------------------------------------


class Paused:
    """An input that gives ``before`` items, then waits until told to give ``after`` more."""

    def __init__(self, before: int, after: int, error: Exception | None = None) -> None:
        self.before, self.after, self.error = before, after, error
        self.waiting = threading.Event()
        self.go = threading.Event()

    def __iter__(self) -> Iterator[int]:
        yield from range(self.before)
        self.waiting.set()
        assert self.go.wait(30)
        yield from range(self.before, self.before + self.after)
        if self.error is not None:
            raise self.error


def a_window(source: Iterator[int], watched: list[list[Any] | None]) -> MapWindow[Any]:
    return MapWindow(
        source,
        ChunkSizer("thread", 1, fixed=8),
        ordered=True,
        raise_errors=True,
        max_batches=4,
        max_items=10_000,
        watch=watched.append,
    )


def take_in_a_thread(window: MapWindow[Any]) -> tuple[threading.Thread, list[Any]]:
    taken: list[Any] = []
    thread = threading.Thread(target=lambda: taken.append(window.take()))
    thread.start()
    return thread, taken


def test_the_items_read_are_sent_while_the_read_waits_and_the_batch_goes_on_after() -> None:
    source = Paused(before=3, after=2)
    watched: list[list[Any] | None] = []
    window = a_window(iter(source), watched)
    thread, taken = take_in_a_thread(window)
    assert source.waiting.wait(30)
    assert watched == [[0, 1, 2]]  # (told as the read began: the list it fills)
    sent = window.send_in_hand()
    assert sent is not None
    assert (sent.seq, sent.first_index, sent.items) == (0, 0, [0, 1, 2])
    assert window.send_in_hand() is None  # nothing more in hand
    source.go.set()
    thread.join(30)
    assert watched[-1] is None  # (told the read is over)
    rest = taken[0]
    assert (rest.seq, rest.first_index, rest.items) == (1, 3, [3, 4])
    assert window.batches_out() == 2
    assert window.take() is None  # (the input ended)
    assert window.send_in_hand() is None  # no read under way


def test_a_read_whose_items_were_all_sent_as_the_input_ended_takes_nothing() -> None:
    source = Paused(before=9, after=0)  # (a whole batch, one item, then it waits and ends)
    window = a_window(iter(source), [])
    first = window.take()
    assert first is not None
    assert first.items == list(range(8))
    thread, taken = take_in_a_thread(window)
    assert source.waiting.wait(30)
    sent = window.send_in_hand()
    assert sent is not None
    assert (sent.seq, sent.first_index, sent.items) == (1, 8, [8])
    source.go.set()
    thread.join(30)
    assert taken == [None]
    for batch in (first, sent):
        window.done(batch, Outcome(list(batch.items)))
    assert [window.pop()[0].items for _ in range(2)] == [list(range(8)), [8]]  # type: ignore[index]
    assert window.finished()


def test_an_input_that_fails_after_a_send_counts_what_was_sent() -> None:
    source = Paused(before=2, after=1, error=OSError("broke"))
    window = a_window(iter(source), [])
    thread, taken = take_in_a_thread(window)
    assert source.waiting.wait(30)
    sent = window.send_in_hand()
    assert sent is not None
    assert sent.items == [0, 1]
    source.go.set()
    thread.join(30)
    rest = taken[0]
    assert rest.items == [2]
    for batch in (sent, rest):
        window.done(batch, Outcome(list(batch.items)))
        assert window.pop() is not None
    with pytest.raises(OSError, match="broke") as caught:
        window.finished()
    assert "plait: raised by the input after 3 items" in caught.value.__notes__


def crawl_on_a_queue(size: int) -> int:
    """A crawler of ``size`` items over a queue its items fill: its reads wait for items it
    holds, which only the watcher sends on."""
    links: queue.Queue[int] = queue.Queue()
    links.put(0)

    def items() -> Iterator[int]:
        for _ in range(size):
            yield links.get(timeout=WAIT)

    def visit(n: int) -> int:
        for k in (2 * n + 1, 2 * n + 2):
            if k < size:
                links.put(k)
        return n

    return len(list(plait.map(visit, items(), workers=2)))


def test_an_item_a_waiting_read_sends_on_may_crawl_with_a_map_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Inline, the items a read that waits holds were run in the watcher's thread, the one of
    the program: an item there that crawled (a map whose reads the watcher must help) waited
    for good. Now they run on threads."""
    monkeypatch.setattr(_probe, "PROBE_ITEMS", 4)
    monkeypatch.setattr(_probe, "PROBE_SECONDS", float("inf"))
    monkeypatch.setattr(_auto, "tiny_plan", lambda measured, **_: Plan("inline", 1, "a test"))
    last = 9_049
    crawled = threading.Event()

    def fn(x: int) -> int:
        if x == last:
            x = crawl_on_a_queue(50)
            crawled.set()
        return x

    def items() -> Iterator[int]:
        yield from range(last + 1)
        if not crawled.wait(WAIT):
            raise TimeoutError(f"item {last} did not crawl within {WAIT} s")
        yield from range(last + 1, 9_100)

    results = plait.map(fn, items(), chunksize=100)
    out = list(results)
    assert results.plan.backend == "inline", str(results.plan)
    assert out == [*range(last), 50, *range(last + 1, 9_100)]
