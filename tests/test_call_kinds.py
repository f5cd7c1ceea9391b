"""Which callables plait awaits: every kind of async callable runs on an event loop through
every entry point."""

from __future__ import annotations

import asyncio
import functools
import inspect
import sys
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

import plait
from plait._validate import is_async

pytestmark = pytest.mark.timeout(60)


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
