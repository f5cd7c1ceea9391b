"""Which callables plait awaits: every kind of async callable runs on an event loop through
every entry point, and a plain function that returns a coroutine fails its item with a
TypeError that says how to make plait await it (never a coroutine handed out unawaited)."""

from __future__ import annotations

import asyncio
import functools
import gc
import inspect
import sys
import threading
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

import plait
from plait._validate import is_async

pytestmark = pytest.mark.timeout(60)

NOT_AWAITED = r"returned a coroutine \(of double\) but is not an async function"


async def double(x: int) -> int:
    await asyncio.sleep(0)
    return x * 2


async def times(factor: int, x: int) -> int:
    await asyncio.sleep(0)
    return factor * x


class Doubler:
    async def __call__(self, x: int) -> int:
        return await double(x)

    async def method(self, x: int) -> int:
        return await double(x)


def returns_coroutine(x: int) -> Coroutine[Any, Any, int]:
    """A plain function, as plait sees it, whose call gives a coroutine."""
    return double(x)


# Each makes a callable that doubles its one argument, asynchronously.
ASYNC_KINDS = [
    pytest.param(lambda: double, id="async-def"),
    pytest.param(lambda: functools.partial(times, 2), id="partial"),
    pytest.param(lambda: functools.partial(functools.partial(times), 2), id="partial-of-partial"),
    pytest.param(lambda: Doubler().method, id="bound-method"),
    pytest.param(Doubler, id="object-with-async-call"),
    pytest.param(lambda: functools.partial(Doubler()), id="partial-of-object"),
]

if sys.version_info >= (3, 12):  # inspect.markcoroutinefunction

    class MarkedCall:
        @inspect.markcoroutinefunction
        def __call__(self, x: int) -> Coroutine[Any, Any, int]:
            return double(x)

    ASYNC_KINDS += [
        pytest.param(
            lambda: inspect.markcoroutinefunction(lambda x: double(x)), id="marked-function"
        ),
        pytest.param(MarkedCall, id="object-with-marked-call"),
    ]


NOT_ASYNC = [
    pytest.param(abs, id="builtin"),
    pytest.param(returns_coroutine, id="plain-function-returning-a-coroutine"),
    pytest.param(lambda x: double(x), id="lambda-returning-a-coroutine"),
    pytest.param(Doubler, id="class-whose-instances-are-async"),
    pytest.param(str.upper, id="method-descriptor"),
    pytest.param(functools.partial(pow, 2), id="partial-of-builtin"),
    pytest.param(Counter(), id="object-without-call"),
]


@pytest.mark.parametrize("make", ASYNC_KINDS)
def test_is_async_recognises_each_kind(make: Callable[[], Any]) -> None:
    assert is_async(make())


@pytest.mark.parametrize("fn", NOT_ASYNC)
def test_is_async_refuses_what_plait_cannot_await_before_the_call(fn: Any) -> None:
    assert not is_async(fn)


@pytest.mark.parametrize("backend", ["auto", "thread"])
@pytest.mark.parametrize("make", ASYNC_KINDS)
def test_map_awaits_each_kind(make: Callable[[], Any], backend: str) -> None:
    """Before: an object with ``async def __call__`` gave coroutine objects, never awaited."""
    assert list(plait.map(make(), range(4), backend=backend)) == [0, 2, 4, 6]


@pytest.mark.parametrize("make", ASYNC_KINDS)
def test_amap_awaits_each_kind(make: Callable[[], Any]) -> None:
    async def main() -> list[int]:
        return await plait.amap(make(), range(4))

    assert asyncio.run(main()) == [0, 2, 4, 6]


@pytest.mark.parametrize("make", ASYNC_KINDS)
def test_pool_submit_awaits_each_kind_on_the_async_backend(make: Callable[[], Any]) -> None:
    with plait.Pool("async") as pool:
        assert pool.submit(make(), 3).result(timeout=30) == 6


@pytest.mark.parametrize("make", ASYNC_KINDS)
def test_pool_submit_refuses_each_kind_on_a_thread_pool(make: Callable[[], Any]) -> None:
    """Before: the object's coroutine came back as the future's result."""
    with plait.Pool("thread") as pool, pytest.raises(TypeError, match="async function"):
        pool.submit(make(), 3)


@pytest.mark.parametrize("make", ASYNC_KINDS)
def test_taskgroup_awaits_each_kind(make: Callable[[], Any]) -> None:
    with plait.TaskGroup(backend="thread") as tg:
        handle = tg.submit(make(), 3)
    assert handle.result() == 6


@pytest.mark.parametrize("make", ASYNC_KINDS)
def test_taskgroup_in_async_with_awaits_each_kind_on_the_callers_loop(
    make: Callable[[], Any],
) -> None:
    async def main() -> object:
        async with plait.TaskGroup(backend="thread") as tg:
            handle = tg.submit(make(), 3)
        return handle.result()

    assert asyncio.run(main()) == 6


@pytest.mark.parametrize("make", ASYNC_KINDS)
def test_run_awaits_each_kind(make: Callable[[], Any]) -> None:
    assert plait.run(functools.partial(make(), 3)) == (6,)


# -- a plain function that returns a coroutine --------------------------------------------


def assert_none_left_unawaited() -> None:
    """A coroutine dropped unawaited warns as it is freed; warnings are errors in this suite,
    and pytest reports one raised there (an unraisable exception) as the test's failure."""
    gc.collect()


@pytest.mark.parametrize("backend", ["auto", "thread", "process"])
def test_a_plain_function_returning_coroutines_fails_with_the_fix(backend: str) -> None:
    with pytest.raises(TypeError, match=NOT_AWAITED) as caught:
        list(plait.map(returns_coroutine, range(5), backend=backend))
    message = str(caught.value)
    assert "returns_coroutine" in message
    assert "async def" in message
    assert any(note.startswith("plait: raised by item 0") for note in caught.value.__notes__)
    assert_none_left_unawaited()


@pytest.mark.parametrize("backend", ["auto", "thread", "process"])
def test_each_coroutine_is_its_items_error_with_errors_return(backend: str) -> None:
    results = list(plait.map(returns_coroutine, range(5), backend=backend, errors="return"))
    assert len(results) == 5
    assert all(isinstance(r, TypeError) for r in results), results
    assert_none_left_unawaited()


def sometimes_a_coroutine(x: int) -> Any:
    return double(x) if x % 3 == 0 else x


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_a_function_returning_a_coroutine_for_some_items_fails_those_only(backend: str) -> None:
    """(A batch is looked at through its first value: one item a batch here. With larger
    batches, a coroutine behind a first value that is none is handed out: see _not_awaited.)"""
    results = list(
        plait.map(sometimes_a_coroutine, range(30), backend=backend, errors="return", chunksize=1)
    )
    for x, result in enumerate(results):
        if x % 3 == 0:
            assert isinstance(result, TypeError), (x, result)
        else:
            assert result == x
    assert_none_left_unawaited()


class FailsFirst:
    """Raises on an item's first call, returns a coroutine on its second."""

    def __init__(self) -> None:
        self.calls: Counter[int] = Counter()
        self.lock = threading.Lock()

    def __call__(self, x: int) -> Any:
        with self.lock:
            self.calls[x] += 1
            first = self.calls[x] == 1
        if first:
            raise OSError("first attempt")
        return double(x)


def test_a_retry_that_returns_a_coroutine_fails_with_the_fix() -> None:
    with pytest.raises(TypeError, match=NOT_AWAITED) as caught:
        list(plait.map(FailsFirst(), range(3), backend="thread", retries=1))
    assert any("failed 2 times" in note for note in caught.value.__notes__)
    assert_none_left_unawaited()


def test_pool_submit_of_a_plain_function_returning_a_coroutine_fails_its_future() -> None:
    with plait.Pool("thread") as pool:
        future = pool.submit(returns_coroutine, 1)
        assert isinstance(future.exception(timeout=30), TypeError)
    with pytest.raises(TypeError, match=NOT_AWAITED):
        future.result()
    assert_none_left_unawaited()


def test_run_of_a_plain_function_returning_a_coroutine_raises_the_fix() -> None:
    with pytest.raises(TypeError, match=NOT_AWAITED):
        plait.run(functools.partial(returns_coroutine, 1))
    assert_none_left_unawaited()


def test_taskgroup_in_async_with_runs_a_plain_function_on_its_pool_and_fails_it() -> None:
    async def main() -> None:
        async with plait.TaskGroup(backend="thread") as tg:
            tg.submit(returns_coroutine, 1)

    with pytest.raises(ExceptionGroup) as caught:
        asyncio.run(main())
    assert caught.group_contains(TypeError, match=NOT_AWAITED)
    assert_none_left_unawaited()
