"""Async functions in plait.map, plait.run and TaskGroup; plait.amap inside async code."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterable, Iterator
from typing import Any

import pytest

import plait


class Gauge:
    """Counts coroutines running at once."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0

    async def visit(self, x: int) -> int:
        self.now += 1
        self.most = max(self.most, self.now)
        await asyncio.sleep(0.01)
        self.now -= 1
        return x * 2


async def double_later(x: int) -> int:
    await asyncio.sleep(0)
    return x * 2


async def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x


async def nap(x: int) -> int:
    await asyncio.sleep(60 if x == 1 else 0)
    return x


def test_map_runs_async_functions_in_order_with_bounded_concurrency() -> None:
    gauge = Gauge()
    assert list(plait.map(gauge.visit, range(50), workers=5)) == [x * 2 for x in range(50)]
    assert gauge.most == 5


def test_map_async_errors_raise_or_return() -> None:
    with pytest.raises(ValueError, match="three") as info:
        list(plait.map(fail_on_three, range(6)))
    assert any("item 3" in note for note in info.value.__notes__)
    results = list(plait.map(fail_on_three, range(6), errors="return"))
    assert isinstance(results[3], ValueError)
    assert results[4] == 4


def test_map_async_timeout_cancels_the_coroutine() -> None:
    started = time.monotonic()
    results = list(plait.map(nap, range(3), task_timeout=0.2, errors="return"))
    assert results[0] == 0
    assert results[2] == 2
    assert isinstance(results[1], plait.TaskTimeout)
    assert time.monotonic() - started < 10


def test_map_async_retries() -> None:
    attempts: dict[int, int] = {}

    async def flaky(x: int) -> int:
        attempts[x] = attempts.get(x, 0) + 1
        if attempts[x] < 3:
            raise ConnectionError(x)
        return x

    assert list(plait.map(flaky, range(4), retries=2)) == [0, 1, 2, 3]


def test_async_functions_do_not_go_to_processes() -> None:
    with pytest.raises(ValueError, match="not on processes"):
        plait.map(double_later, [1], backend="process")


def test_pools_refuse_the_wrong_kind_of_function() -> None:
    with plait.Pool() as pool, pytest.raises(TypeError, match="fn is an async function"):
        pool.submit(double_later, 1)
    with plait.Pool("async") as pool:
        assert pool.submit(double_later, 21).result(timeout=30) == 42
        with pytest.raises(TypeError, match="runs async functions only"):
            pool.submit(abs, 1)


def test_run_mixes_async_and_sync_functions() -> None:
    async def hello() -> str:
        await asyncio.sleep(0)
        return "async"

    results: tuple[object, ...] = plait.run(hello, lambda: "sync")  # run does not unwrap types
    assert results == ("async", "sync")


def test_a_failing_sync_task_cancels_an_async_sibling() -> None:
    running = threading.Event()
    cancelled = threading.Event()

    async def waits() -> None:
        running.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def fails() -> None:
        assert running.wait(10)  # fail only once the coroutine runs: it must be cancelled
        raise KeyError("sync")

    with pytest.raises(ExceptionGroup) as info, plait.TaskGroup() as tg:
        sibling = tg.submit(waits)
        tg.submit(fails)
    assert [type(e) for e in info.value.exceptions] == [KeyError]
    assert cancelled.is_set()
    assert sibling.cancelled()


def test_a_failing_async_task_cancels_a_sync_sibling() -> None:
    async def fails() -> None:
        await asyncio.sleep(0)
        raise KeyError("async")

    def waits() -> None:
        plait.sleep(60)

    with pytest.raises(ExceptionGroup), plait.TaskGroup() as tg:
        sibling = tg.submit(waits)
        tg.submit(fails)
    assert sibling.cancelled()


def test_amap_inside_a_running_loop_does_not_block_it() -> None:
    def slow_sync(x: int) -> int:
        time.sleep(0.02)
        return x

    async def main() -> tuple[list[int], int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.001)
                ticks += 1

        clock = asyncio.create_task(ticker())
        results = await plait.amap(slow_sync, range(20), workers=2)
        clock.cancel()
        return results, ticks

    results, ticks = asyncio.run(main())
    assert results == list(range(20))
    assert ticks > 10  # the loop kept running while the pool worked


def test_amap_runs_async_functions_concurrently_on_the_callers_loop() -> None:
    gauge = Gauge()

    async def main() -> list[int]:
        return await plait.amap(gauge.visit, range(30), workers=10)

    assert asyncio.run(main()) == [x * 2 for x in range(30)]
    assert gauge.most == 10


def test_amap_over_an_endless_input_reads_a_bounded_window() -> None:
    read = 0

    def endless() -> Iterator[int]:
        nonlocal read
        for i in itertools.count():
            read = i + 1
            yield i

    async def main() -> int:
        lead = 0
        async with plait.amap(double_later, endless(), workers=20) as results:
            async for value in results:
                lead = max(lead, read - value // 2)
                if value >= 2000:
                    break
        return lead

    assert asyncio.run(main()) <= 21


def test_amap_unordered_and_errors() -> None:
    async def main() -> tuple[list[int], list[object]]:
        unordered = await plait.amap(double_later, range(20), ordered=False)
        returned = await plait.amap(fail_on_three, range(5), errors="return")
        return unordered, returned

    unordered, returned = asyncio.run(main())
    assert sorted(unordered) == [x * 2 for x in range(20)]
    assert isinstance(returned[3], ValueError)

    async def raising() -> list[int]:
        return await plait.amap(fail_on_three, range(5))

    with pytest.raises(ValueError, match="three"):
        asyncio.run(raising())


def test_closing_amap_cancels_running_coroutines() -> None:
    cancelled = 0

    async def forever(x: int) -> int:
        nonlocal cancelled
        try:
            await asyncio.sleep(60 if x else 0)
        except asyncio.CancelledError:
            cancelled += 1
            raise
        return x

    async def main() -> None:
        async with plait.amap(forever, range(10), workers=5) as results:
            assert await results.__anext__() == 0

    asyncio.run(main())
    assert cancelled == 4  # items 1-4 were running; 5-9 never started


@pytest.mark.timeout(30)
def test_amap_an_item_that_cancels_itself_fails_alone() -> None:
    """A coroutine that raises CancelledError cancels its own item, not the caller's map."""

    async def fn(x: int) -> int:
        if x == 2:
            raise asyncio.CancelledError
        return x

    async def main() -> list[Any]:
        return await plait.amap(fn, range(5), errors="return")

    results = asyncio.run(main())
    assert results[:2] == [0, 1]
    assert results[3:] == [3, 4]
    assert isinstance(results[2], plait.Cancelled)
    assert "plait: raised by item 2: 2" in results[2].__notes__


async def stop_at_two(x: int) -> int:
    if x == 2:
        raise StopAsyncIteration("mine")
    return x


def test_amap_of_an_async_def_raising_stop_async_iteration_is_as_on_threads() -> None:
    """A RuntimeError noting why and naming the item, as a plain function's on threads; it
    was Python's bare 'async generator raised StopAsyncIteration', naming nothing (and with
    errors="return", the StopAsyncIteration itself, unlike threads)."""

    async def main() -> None:
        with pytest.raises(RuntimeError, match="the function raised StopAsyncIteration") as caught:
            await plait.amap(stop_at_two, range(4))
        assert any("raised by item 2" in note for note in caught.value.__notes__)
        assert isinstance(caught.value.__cause__, StopAsyncIteration)
        returned = await plait.amap(stop_at_two, range(4), errors="return")
        assert isinstance(returned[2], RuntimeError)

    asyncio.run(main())


def test_an_amap_left_unclosed_as_asyncio_run_ends_leaves_no_fetch_thread() -> None:
    """Dropped after a break as the loop ends, the amap's async generator is closed by a
    GeneratorExit that interrupted its last await, on 3.11: its fetch thread was left waiting
    for good."""

    def slow_double(x: int) -> int:
        time.sleep(0.001)
        return 2 * x

    async def main() -> None:
        async for value in plait.amap(slow_double, range(100)):
            if value == 6:
                break  # (not closed: asyncio.run's shutdown closes it)

    asyncio.run(main())
    deadline = time.monotonic() + 10
    while any(t.name == "plait-amap-fetch" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the fetch thread is still there"
        time.sleep(0.01)


async def _taken_until_error(
    results: AsyncIterable[int],
) -> tuple[list[int], BaseException | None]:
    """The results taken before the map raised, and what it raised (None: it ended)."""
    got: list[int] = []
    try:
        async for value in results:
            got.append(value)  # noqa: PERF401 (what came before the error is kept)
    except BaseException as exc:
        return got, exc
    return got, None


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
def test_an_items_ctrl_c_reaches_the_amap_consumer_as_itself(error: type[BaseException]) -> None:
    """A plain function's Ctrl-C (or SystemExit) was raised in a fetch task of its own, which
    handed it to the event loop: the consumer got a CancelledError instead, after the results
    before it."""

    def fn(x: int) -> int:
        if x == 3:
            raise error(f"item {x}")
        return x

    async def main() -> tuple[list[int], BaseException | None]:
        return await _taken_until_error(plait.amap(fn, range(8), backend="thread"))

    got, caught = asyncio.run(main())
    assert got == [0, 1, 2]
    assert type(caught) is error, repr(caught)


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
def test_an_async_items_ctrl_c_reaches_the_amap_consumer_as_itself(
    error: type[BaseException],
) -> None:
    """An ``async def`` item's Ctrl-C (or SystemExit) left its asyncio task, which hands it to
    the event loop at once: the consumer got a CancelledError, before the results that came
    first. Now it is raised in the consumer's frame, in its item's place, as on a pool."""
    release = asyncio.Event()

    async def fn(x: int) -> int:
        if x == 3:
            release.set()  # (it ends before item 0: the order is the window's, not the clock's)
            raise error(f"item {x}")
        if x == 0:
            await release.wait()
        return x

    async def main() -> tuple[list[int], BaseException | None]:
        return await _taken_until_error(plait.amap(fn, range(8)))

    got, caught = asyncio.run(main())
    assert got == [0, 1, 2]
    assert type(caught) is error, repr(caught)
    assert any("item 3" in note for note in getattr(caught, "__notes__", ())), caught


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
def test_an_async_items_ctrl_c_on_the_event_loop_thread_ends_the_map_in_its_place(
    error: type[BaseException],
) -> None:
    """``plait.map`` over an ``async def``: an item's Ctrl-C (or SystemExit) left its task and
    ended the event loop's thread, and the map waited for good. Now it is raised in its item's
    place, after the results before it, and the next map runs."""

    async def fn(x: int) -> int:
        if x == 3:
            raise error(f"item {x}")
        return x

    got: list[int] = []
    with pytest.raises(error) as caught:
        for value in plait.map(fn, range(8)):
            got.append(value)  # noqa: PERF402 (what came before the error is kept)
    assert got == [0, 1, 2]
    assert any("item 3" in note for note in getattr(caught.value, "__notes__", ()))
    got.clear()
    with pytest.raises(error):  # (with a time limit, the item ran as a task of its own on 3.11)
        for value in plait.map(fn, range(8), task_timeout=30):
            got.append(value)  # noqa: PERF402 (what came before the error is kept)
    assert got == [0, 1, 2]
    assert list(plait.map(fn, range(3))) == [0, 1, 2]
    with plait.Pool("async") as pool:
        with pytest.raises(error):
            pool.submit(fn, 3).result(timeout=10)
        assert pool.submit(fn, 1).result(timeout=10) == 1


def test_an_async_items_own_timeout_error_is_not_taken_for_its_time_limit() -> None:
    """``task_timeout`` on an ``async def``: the item's own TimeoutError, raised long before
    its time is up, is handed out as itself, not as a TaskTimeout."""

    async def fn(x: int) -> int:
        if x == 1:
            raise TimeoutError("the item's own")
        return x

    results = list(plait.map(fn, range(3), task_timeout=30, errors="return"))
    assert results[::2] == [0, 2]
    assert type(results[1]) is TimeoutError, repr(results[1])
    assert str(results[1]) == "the item's own"


def test_an_amaps_results_ready_by_its_deadline_are_handed_out_after_it() -> None:
    """As plait.map's: only a result not ready in time raises TimeoutError. A plain
    function's amap raised it at the first fetch past the deadline, the ready results lost."""
    computed = threading.Semaphore(0)

    def counted(x: int) -> int:
        computed.release()
        return x

    async def main() -> list[int]:
        results = plait.amap(counted, range(4), backend="thread", workers=4, chunksize=1,
                             timeout=0.5)  # fmt: skip
        got = [await results.__anext__()]
        for _ in range(4):
            assert await asyncio.to_thread(computed.acquire, timeout=10)
        await asyncio.sleep(0.6)  # (past the deadline, however late this task was woken)
        got += [value async for value in results]
        return got

    assert asyncio.run(main()) == [0, 1, 2, 3]
