"""``async with plait.TaskGroup()``: the sync group's rules, without blocking the event loop."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import plait

pytestmark = pytest.mark.timeout(60)


def add(a: int, b: int) -> int:
    return a + b


def test_async_tasks_run_on_the_callers_loop_and_plain_ones_on_the_pool(backend: str) -> None:
    async def where() -> asyncio.AbstractEventLoop:
        await asyncio.sleep(0)
        return asyncio.get_running_loop()

    async def main() -> None:
        async with plait.TaskGroup(backend=backend) as tg:
            on_loop = tg.submit(where)
            plain = tg.submit(add, 2, 3)
            assert await plain == 5  # awaiting a handle does not block the loop
        assert on_loop.result() is asyncio.get_running_loop()
        assert plain.result() == 5

    asyncio.run(main())


def test_the_loop_keeps_running_while_the_block_waits() -> None:
    """A thread task waits for something only a coroutine on the loop does: a group that
    blocked the loop while waiting would never end."""
    set_by_loop = threading.Event()

    def wait_for_loop() -> bool:
        return set_by_loop.wait(timeout=30)

    async def later() -> None:
        await asyncio.sleep(0)
        set_by_loop.set()

    async def main() -> bool:
        async with plait.TaskGroup() as tg:
            waited = tg.submit(wait_for_loop)
            tg.submit(later)
        return waited.result()

    assert asyncio.run(main()) is True


def test_a_failure_cancels_the_tasks_on_the_loop_and_raises_a_group() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    async def fail() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    handles: list[plait.TaskHandle[Any]] = []

    async def main() -> None:
        async with plait.TaskGroup() as tg:
            handles.append(tg.submit(forever))
            handles.append(tg.submit(fail))

    with pytest.raises(ExceptionGroup) as caught:
        asyncio.run(main())
    assert [type(e) for e in caught.value.exceptions] == [ValueError]
    assert handles[0].cancelled()
    with pytest.raises(plait.Cancelled) as cancelled:
        handles[0].result()
    assert cancelled.value.reason is plait.CancelReason.SIBLING_FAILED


def test_a_failing_thread_task_cancels_the_coroutines_too() -> None:
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    def fail() -> None:
        raise KeyError("thread")

    async def main() -> plait.TaskHandle[None]:
        async with plait.TaskGroup() as tg:
            waiting = tg.submit(forever)
            await started.wait()
            tg.submit(fail)
        return waiting  # pragma: no cover (the block raises)

    with pytest.raises(ExceptionGroup) as caught:
        asyncio.run(main())
    assert [type(e) for e in caught.value.exceptions] == [KeyError]


def test_the_group_deadline_cancels_what_still_runs() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    async def main() -> plait.TaskHandle[None]:
        handle: plait.TaskHandle[None]
        with pytest.raises(TimeoutError):
            async with plait.TaskGroup(timeout=0.2) as tg:
                handle = tg.submit(forever)
        return handle

    assert asyncio.run(main()).cancelled()


def test_cancelling_the_caller_cancels_the_group_and_leaves_nothing_running() -> None:
    stop_thread = threading.Event()
    entered = asyncio.Event()
    ended: list[str] = []

    def thread_task() -> None:
        while not plait.cancelled():
            stop_thread.wait(0.01)
        ended.append("thread")

    async def loop_task() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            ended.append("coroutine")

    async def body() -> None:
        async with plait.TaskGroup() as tg:
            tg.submit(thread_task)
            tg.submit(loop_task)
            entered.set()

    async def main() -> None:
        running = asyncio.create_task(body())
        await entered.wait()
        await asyncio.sleep(0)  # let the block reach its end and wait there
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running

    asyncio.run(main())
    assert "coroutine" in ended  # awaited before the cancellation went on
    # The thread task was told to stop; the leak check sees its thread gone.


def test_an_error_in_the_block_cancels_its_tasks_and_propagates() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    async def main() -> plait.TaskHandle[None]:
        handle: plait.TaskHandle[None]
        with pytest.raises(RuntimeError, match="in the block"):
            async with plait.TaskGroup() as tg:
                handle = tg.submit(forever)
                await asyncio.sleep(0)
                raise RuntimeError("in the block")
        return handle

    handle = asyncio.run(main())
    assert handle.cancelled()
    with pytest.raises(plait.Cancelled) as caught:
        handle.result()
    assert caught.value.reason is plait.CancelReason.BLOCK_FAILED


def test_a_coroutine_that_cancels_itself_is_cancelled_not_failed() -> None:
    async def gives_up() -> None:
        raise asyncio.CancelledError

    async def fine() -> int:
        return 1

    async def main() -> tuple[plait.TaskHandle[None], plait.TaskHandle[int]]:
        async with plait.TaskGroup() as tg:
            a = tg.submit(gives_up)
            b = tg.submit(fine)
        return a, b

    a, b = asyncio.run(main())
    assert a.cancelled()
    assert b.result() == 1


def test_stop_iteration_in_a_coroutine_task_is_a_runtime_error() -> None:
    async def stops() -> None:
        raise StopIteration

    async def main() -> None:
        async with plait.TaskGroup() as tg:
            tg.submit(stops)

    with pytest.raises(ExceptionGroup) as caught:
        asyncio.run(main())
    (error,) = caught.value.exceptions
    assert isinstance(error, RuntimeError)
    assert isinstance(error.__cause__, StopIteration)


async def fail_soon(error: BaseException) -> None:
    raise error


def test_a_failure_the_block_re_raises_is_reported_once() -> None:
    error = ValueError("once")

    async def main() -> None:
        async with plait.TaskGroup() as group:
            handle = group.submit(fail_soon, error)
            await handle

    with pytest.raises(ExceptionGroup) as caught:
        asyncio.run(main())
    assert caught.value.exceptions == (error,)


async def sleep_until_told() -> str:
    await asyncio.sleep(30)
    return "never"


def test_a_sibling_cancelled_for_a_failure_and_awaited_by_the_block_keeps_the_failure() -> None:
    error = ValueError("the real failure")

    async def main() -> None:
        async with plait.TaskGroup() as group:
            group.submit(fail_soon, error)
            await group.submit(sleep_until_told)

    with pytest.raises(ExceptionGroup) as caught:
        asyncio.run(main())
    assert caught.value.exceptions == (error,)
