"""Timeouts of any length: every timeout plait takes may be any finite number of seconds, and a
month, 1e10 s or 1e308 s must work as a limit that is never reached, not raise OverflowError
out of the system wait under it (epoll's int of milliseconds ends at 24.8 days, a lock's wait
near 1e10 s). Waits past ``plait._waits.LONGEST_WAIT`` are made of several: with that bound
made tiny, the tests below check that the waits still end when they should, not at a slice."""

from __future__ import annotations

import threading
import time
from concurrent.futures import TimeoutError as FuturesTimeout
from contextlib import AbstractContextManager, nullcontext

import pytest

import plait
from plait import _waits

# A month (past epoll's 24.8 days), past a lock's 292 years, and the largest a float holds.
LONG = [86_400.0 * 30, 1e10, 1e308]


def same(x: int) -> int:
    return x


def sleep_if_told(seconds: float) -> float:
    plait.sleep(seconds)  # (a thread abandoned past its task_timeout is told to stop: it does)
    return seconds


def abandoned(backend: str) -> AbstractContextManager[object]:
    """A thread past its task_timeout is abandoned, with a warning (warnings are errors here)."""
    return pytest.warns(RuntimeWarning, match="abandoned") if backend == "thread" else nullcontext()


@pytest.fixture
def short_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """System waits cut at 20 ms: a wait of a second is made of fifty."""
    monkeypatch.setattr(_waits, "LONGEST_WAIT", 0.02)


@pytest.mark.parametrize("seconds", LONG)
def test_a_long_task_timeout_is_kept_by_a_map(backend: str, seconds: float) -> None:
    assert list(plait.map(same, range(3), backend=backend, task_timeout=seconds)) == [0, 1, 2]


@pytest.mark.parametrize("seconds", LONG)
def test_a_long_timeout_is_kept_by_a_map(backend: str, seconds: float) -> None:
    assert list(plait.map(same, range(3), backend=backend, timeout=seconds)) == [0, 1, 2]


@pytest.mark.parametrize("seconds", LONG)
def test_a_pool_with_a_long_task_timeout_runs_and_still_keeps_a_short_one(
    backend: str, seconds: float
) -> None:
    # On threads the watchdog's wait for the long deadline raised and killed it: every later
    # task_timeout of the pool went unwatched (an item meant to stop at 0.3 s ran on).
    with plait.Pool(backend, workers=1, task_timeout=seconds) as pool:
        assert list(pool.map(same, range(3))) == [0, 1, 2]
        assert pool.submit(same, 4).result(timeout=seconds) == 4
        with abandoned(backend):
            late = list(pool.map(sleep_if_told, [10.0], task_timeout=0.3, errors="return"))
        assert isinstance(late[0], plait.TaskTimeout)


@pytest.mark.parametrize("seconds", LONG)
def test_amap_keeps_long_timeouts_on_processes(seconds: float) -> None:
    import asyncio

    async def main() -> list[int]:
        results = plait.amap(same, range(3), backend="process", timeout=seconds)
        return [x async for x in results]

    assert asyncio.run(main()) == [0, 1, 2]


@pytest.mark.parametrize("seconds", LONG)
def test_a_task_group_and_run_keep_a_long_timeout(seconds: float) -> None:
    assert plait.run(lambda: time.sleep(0.01), timeout=seconds) == (None,)
    with plait.TaskGroup(timeout=seconds) as group:
        handle = group.submit(time.sleep, 0.01)
        handle.result(timeout=seconds)  # waits: the task sleeps
    with plait.TaskGroup(timeout=seconds, backend="process") as group:
        on_process = group.submit(same, 5)
    assert on_process.result(timeout=seconds) == 5


@pytest.mark.parametrize("seconds", LONG)
def test_plait_sleep_of_any_length_is_cut_short_by_a_cancel(seconds: float) -> None:
    started = threading.Event()

    def sleeper() -> None:
        started.set()
        plait.sleep(seconds)

    with plait.TaskGroup() as group:
        handle = group.submit(sleeper)
        assert started.wait(10)
        group.cancel()
    with pytest.raises(plait.Cancelled):
        handle.result()


@pytest.mark.parametrize("seconds", LONG)
def test_a_pool_future_waits_with_a_long_timeout(seconds: float) -> None:
    go = threading.Event()
    with plait.Pool("thread") as pool:
        future = pool.submit(go.wait, 10)
        threading.Timer(0.05, go.set).start()
        assert future.result(timeout=seconds) is True
        pending = pool.submit(go.wait, 10)
        assert pending.exception(timeout=seconds) is None


def test_a_wait_made_of_slices_ends_at_its_time_not_at_a_slice(short_slices: None) -> None:
    never = threading.Event()
    with plait.Pool("thread") as pool:
        future = pool.submit(never.wait, 10)
        started = time.monotonic()
        with pytest.raises(FuturesTimeout):
            future.result(timeout=0.3)
        assert time.monotonic() - started >= 0.3
        never.set()
        assert future.result(timeout=10) is True


def test_a_sliced_wait_hands_out_the_calls_own_timeout_error_at_once(
    short_slices: None,
) -> None:
    # A TaskTimeout is a TimeoutError: it is the call's outcome, not the wait running out.
    with plait.Pool("process", workers=1, task_timeout=0.3) as pool:
        hung = pool.submit(sleep_if_told, 60.0)
        with pytest.raises(plait.TaskTimeout):
            hung.result(timeout=30)


def test_a_task_timeout_made_of_slices_fires_at_its_time(backend: str, short_slices: None) -> None:
    started = time.monotonic()
    with abandoned(backend):
        results = list(
            plait.map(sleep_if_told, [10.0], backend=backend, task_timeout=0.4, errors="return")
        )
    assert isinstance(results[0], plait.TaskTimeout)
    assert 0.4 <= time.monotonic() - started < 8


def test_a_map_timeout_made_of_slices_fires_at_its_time(backend: str, short_slices: None) -> None:
    started = time.monotonic()
    results = plait.map(sleep_if_told, [10.0], backend=backend, timeout=0.4)
    with pytest.raises(TimeoutError), results:
        list(results)
    assert time.monotonic() - started >= 0.4


def test_a_task_group_deadline_made_of_slices_fires_at_its_time(short_slices: None) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError), plait.TaskGroup(timeout=0.4) as group:
        group.submit(sleep_if_told, 10.0)
    assert time.monotonic() - started >= 0.4
