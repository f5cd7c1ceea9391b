"""``plait.amap`` reads any input without blocking the event loop: an async iterable on the
loop, a plain one that waits (a generator on a queue) on a thread of its own, for an
``async def`` and for a plain function on a pool alike; and a cancellation or a deadline
never waits for an input's next item."""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import plait

pytestmark = pytest.mark.timeout(60)


async def agen(n: int, *, fail_after: int | None = None) -> AsyncIterator[int]:
    for x in range(n):
        if x == fail_after:
            raise LookupError("the input broke")
        await asyncio.sleep(0)
        yield x


async def twice(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


def plain_twice(x: int) -> int:
    return 2 * x


def test_an_async_def_over_an_async_iterable() -> None:
    async def main() -> list[int]:
        return await plait.amap(twice, agen(200), workers=7)

    assert asyncio.run(main()) == [2 * x for x in range(200)]


@pytest.mark.parametrize("backend", ["thread", "process", "auto"])
def test_a_plain_function_over_an_async_iterable(backend: str) -> None:
    async def main() -> list[int]:
        return [x async for x in plait.amap(plain_twice, agen(300), backend=backend)]

    assert asyncio.run(main()) == [2 * x for x in range(300)]


@pytest.mark.parametrize("fn", [twice, plain_twice], ids=["async def", "plain"])
def test_an_async_input_that_raises_ends_the_map_after_what_it_gave(fn: Any) -> None:
    got: list[int] = []

    async def main() -> None:
        async for value in plait.amap(fn, agen(50, fail_after=30)):
            got.append(value)  # noqa: PERF401 (what came before the error is kept)

    with pytest.raises(LookupError, match="the input broke") as raised:
        asyncio.run(main())
    assert got == [2 * x for x in range(30)]
    assert any("raised by the input after 30 items" in n for n in raised.value.__notes__)


def fed_by(feed: queue.Queue[int | None]) -> Iterator[int]:
    """A plain generator that waits for each item: what a loop must not block on."""
    while (item := feed.get()) is not None:
        yield item


def test_an_input_that_waits_does_not_block_the_loop() -> None:
    """Each item is given only once the loop has run a heartbeat since the last one: a loop
    blocked in the input's read would never run it."""
    feed: queue.Queue[int | None] = queue.Queue()

    async def main() -> list[int]:
        beat = asyncio.Event()

        async def heartbeat() -> None:
            while True:
                beat.set()
                await asyncio.sleep(0.001)

        async def feeder() -> None:
            for x in range(20):
                beat.clear()
                await beat.wait()
                feed.put(x)
            feed.put(None)

        beating = asyncio.create_task(heartbeat())
        feeding = asyncio.create_task(feeder())
        try:
            return await plait.amap(twice, fed_by(feed), workers=4)
        finally:
            beating.cancel()
            await feeding

    assert asyncio.run(main()) == [2 * x for x in range(20)]


def test_results_come_while_the_input_waits_for_its_next_item() -> None:
    feed: queue.Queue[int | None] = queue.Queue()
    feed.put(0)

    async def main() -> None:
        async with plait.amap(twice, fed_by(feed)) as results:
            assert await results.__anext__() == 0  # (item 1 is not there yet)
            feed.put(1)
            assert await results.__anext__() == 2
            feed.put(None)
            assert [x async for x in results] == []

    asyncio.run(main())


async def endless_wait() -> AsyncIterator[int]:
    yield 0
    await asyncio.Event().wait()  # never set
    yield 1  # pragma: no cover


@pytest.mark.parametrize("fn", [twice, plain_twice], ids=["async def", "plain"])
def test_a_cancellation_does_not_wait_for_an_async_inputs_next_item(fn: Any) -> None:
    async def main() -> list[int]:
        return await plait.amap(fn, endless_wait(), backend="auto")

    async def bounded() -> None:
        await asyncio.wait_for(main(), 0.3)

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        asyncio.run(bounded())
    assert time.monotonic() - started < 10


@pytest.fixture
def stalled_feed() -> Iterator[queue.Queue[int | None]]:
    """A feed that gives item 0, then waits; ended after the test, so that the reader thread
    left waiting for it ends too."""
    feed: queue.Queue[int | None] = queue.Queue()
    feed.put(0)
    yield feed
    feed.put(None)
    for thread in threading.enumerate():
        if thread.name in ("plait-amap-input", "plait-amap-fetch"):
            thread.join(10)


def test_a_cancellation_does_not_wait_for_a_plain_inputs_next_item(
    stalled_feed: queue.Queue[int | None],
) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(plait.amap(twice, fed_by(stalled_feed)), 0.3)

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        asyncio.run(bounded())
    assert time.monotonic() - started < 10


def test_a_deadline_is_kept_while_the_input_waits(stalled_feed: queue.Queue[int | None]) -> None:
    async def main() -> list[int]:
        return await plait.amap(twice, fed_by(stalled_feed), timeout=0.3)

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        asyncio.run(main())
    assert time.monotonic() - started < 10


def test_several_inputs_async_and_plain_together() -> None:
    async def add(x: int, y: int) -> int:
        return x + y

    async def main() -> list[int]:
        return await plait.amap(add, agen(40), iter(range(100, 140)))

    assert asyncio.run(main()) == [x + 100 + x for x in range(40)]

    async def uneven() -> list[int]:
        return await plait.amap(add, agen(40), iter(range(10)))

    with pytest.raises(ValueError, match="different lengths"):
        asyncio.run(uneven())


def test_plait_map_given_an_async_iterable_points_to_amap() -> None:
    with pytest.raises(TypeError, match=r"async iterable; in async code use plait\.amap"):
        plait.map(plain_twice, agen(3))  # type: ignore[call-overload]  # (mypy says so too)


def cancelled_after_two() -> Iterator[int]:
    yield from range(2)
    raise asyncio.CancelledError("from the input")


async def async_cancelled_after_two() -> AsyncIterator[int]:
    for x in range(2):
        yield x
    raise asyncio.CancelledError("from the input")


@pytest.mark.parametrize("make", [cancelled_after_two, async_cancelled_after_two])
def test_an_input_that_raises_cancelled_error_raises_it_to_the_consumer(make: Any) -> None:
    """(It was taken for the map's own cancellation: the map hung, or ended early as if the
    input had.)"""

    async def main() -> list[int]:
        return await asyncio.wait_for(plait.amap(twice, make()), 30)

    with pytest.raises(asyncio.CancelledError, match="from the input"):
        asyncio.run(main())


def test_a_deadline_is_kept_while_results_keep_coming() -> None:
    """A consumer slower than the workers always finds a result ready: the deadline was only
    looked at while it waited, so it never came."""

    async def main() -> None:
        async for _ in plait.amap(plain_twice, itertools.count(), backend="thread", timeout=0.3):
            pass

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        asyncio.run(main())
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_a_cancellation_does_not_wait_for_a_pool_maps_input(
    backend: str, stalled_feed: queue.Queue[int | None]
) -> None:
    """A plain function's map reads its input in the thread that fetches its results: that
    thread is not waited for (it ends once the input gives its next item)."""

    async def bounded() -> None:
        await asyncio.wait_for(plait.amap(plain_twice, fed_by(stalled_feed), backend=backend), 1)

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        asyncio.run(bounded())
    assert time.monotonic() - started < 20


def test_a_pool_maps_deadline_is_kept_while_its_input_waits(
    stalled_feed: queue.Queue[int | None],
) -> None:
    async def main() -> list[int]:
        return await plait.amap(plain_twice, fed_by(stalled_feed), backend="thread", timeout=0.5)

    started = time.monotonic()
    with pytest.raises(TimeoutError, match="did not finish within its timeout"):
        asyncio.run(main())
    assert time.monotonic() - started < 20


def test_leaving_a_pool_maps_block_while_its_input_waits(
    stalled_feed: queue.Queue[int | None],
) -> None:
    """(Closing the map's generator, still inside its thread's read of the input, raised
    ValueError: generator already executing.)"""

    async def main() -> None:
        async with plait.amap(plain_twice, fed_by(stalled_feed), backend="thread") as results:
            # (Item 0's result waits too: the thread that would hand it out is reading.)
            await asyncio.wait_for(results.__anext__(), 0.3)

    with pytest.raises(TimeoutError):
        asyncio.run(main())
