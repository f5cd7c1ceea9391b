"""One set of map keywords on plait.map, Pool.map and plait.amap, checked once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import plait


def test_plait_map_takes_a_whole_map_timeout() -> None:
    results = plait.map(plait.sleep, [30, 30], workers=1, timeout=0.05)  # told to stop at the end
    with pytest.raises(TimeoutError, match="within its timeout"):
        next(results)


def test_one_map_can_switch_off_its_pools_task_timeout() -> None:
    def slowish(x: int) -> int:
        plait.sleep(0.3)
        return x

    with plait.Pool("thread", 2, task_timeout=0.05) as pool:
        assert list(pool.map(slowish, [1, 2], task_timeout=None)) == [1, 2]
        assert isinstance(next(iter(pool.map(slowish, [1], errors="return"))), plait.TaskTimeout)
        assert isinstance(
            next(iter(pool.map(slowish, [1], errors="return", task_timeout=plait.DEFAULT))),
            plait.TaskTimeout,
        )


def test_one_map_can_switch_off_its_pools_retries() -> None:
    calls: list[int] = []

    def fails_once(x: int) -> int:
        calls.append(x)
        if len(calls) == 1:
            raise OSError("once")
        return x

    with plait.Pool("thread", 1, retries=2) as pool:
        assert list(pool.map(fails_once, [1])) == [1]
        calls.clear()
        with pytest.raises(OSError, match="once"):
            list(pool.map(fails_once, [1], retries=None))


def test_amap_takes_the_same_keywords(capsys: pytest.CaptureFixture[str]) -> None:
    async def double(x: int) -> int:
        return 2 * x

    async def main() -> tuple[list[int], list[int]]:
        on_loop = await plait.amap(double, range(20), progress=True, rate=10_000, timeout=30)
        on_pool = await plait.amap(abs, range(-20, 0), chunksize=3, progress=True, timeout=30)
        return on_loop, on_pool

    on_loop, on_pool = asyncio.run(main())
    assert on_loop == [2 * x for x in range(20)]
    assert on_pool == list(range(20, 0, -1))
    assert "20/20" in capsys.readouterr().err


def test_amap_of_an_async_function_has_a_whole_map_timeout() -> None:
    async def slow(x: int) -> int:
        await asyncio.sleep(30)
        return x

    async def main() -> None:
        with pytest.raises(TimeoutError, match="within its timeout"):
            await plait.amap(slow, [1, 2], timeout=0.05)

    started = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    "call",
    [
        lambda: plait.map(abs, [1], chunk_size=2),  # type: ignore[call-overload]
        lambda: plait.Pool().map(abs, [1], chunk_size=2),  # type: ignore[call-overload]
        lambda: plait.amap(abs, [1], chunk_size=2),  # type: ignore[call-arg]
    ],
)
def test_a_misspelt_keyword_names_the_right_one(call: object) -> None:
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'chunk_size'.*'chunksize'"):
        call()  # type: ignore[operator]


def test_options_are_checked_the_same_everywhere() -> None:
    calls: list[Any] = [plait.map, plait.Pool().map, plait.amap]
    for call in calls:
        with pytest.raises(ValueError, match=r"ordered must be True or False"):
            call(abs, [1], ordered="yes")
        with pytest.raises(ValueError, match=r"rate must be > 0"):
            call(abs, [1], rate=0)
        with pytest.raises(ValueError, match=r"chunksize=5 cannot be combined with task_timeout"):
            call(abs, [1], chunksize=5, task_timeout=1)


def test_default_reads_as_itself() -> None:
    assert repr(plait.DEFAULT) == "plait.DEFAULT"
