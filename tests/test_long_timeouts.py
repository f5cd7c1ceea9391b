"""Timeouts of any length: every timeout plait takes may be any finite number of seconds, and a
month, 1e10 s or 1e308 s must work as a limit that is never reached, not raise OverflowError
out of the system wait under it (epoll's int of milliseconds ends at 24.8 days, a lock's wait
near 1e10 s). Waits past ``plait._waits.LONGEST_WAIT`` are made of several: with that bound
made tiny, the tests below check that the waits still end when they should, not at a slice."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import TimeoutError as FuturesTimeout
from contextlib import AbstractContextManager, nullcontext

import pytest

import plait
from plait import _waits, sync

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


# -- plait.sync ------------------------------------------------------------------------------


def soon(action: Callable[[], object]) -> None:
    """Run ``action`` from another thread, a moment from now (before or while the test waits:
    either way the wait must end with it)."""
    timer = threading.Timer(0.02, action)
    timer.start()
    waited_for.append(timer)


waited_for: list[threading.Thread] = []


@pytest.fixture(autouse=True)
def _timers_ended() -> Iterator[None]:
    yield
    while waited_for:
        waited_for.pop().join()


def sync_waits(seconds: float) -> dict[str, Callable[[], object]]:
    """Each plait.sync wait that takes a timeout, ended by another thread while it waits."""

    def semaphore() -> object:
        held = sync.BoundedSemaphore(1)
        held.acquire()
        soon(held.release)
        return held.acquire(timeout=seconds)

    def event() -> object:
        flag = sync.Event()
        soon(flag.set)
        return flag.wait(seconds)

    def condition() -> object:
        cond, ready = sync.Condition(), []

        def notify() -> None:
            with cond:
                ready.append(True)
                cond.notify_all()

        with cond:
            soon(notify)
            return bool(cond.wait_for(lambda: ready, seconds))

    def barrier() -> object:
        gate = sync.Barrier(2, timeout=seconds)
        soon(gate.wait)
        return gate.wait(seconds) in (0, 1)

    def channel() -> object:
        pipe: sync.Channel[int] = sync.Channel(1)
        soon(lambda: pipe.send(1))
        return pipe.recv(timeout=seconds) == 1

    def rwlock() -> object:
        lock, held = sync.RWLock(), threading.Event()

        def read_a_moment() -> None:  # (a reader releases in its own thread)
            with lock.read():
                held.set()
                time.sleep(0.02)

        reader = threading.Thread(target=read_a_moment)
        reader.start()
        waited_for.append(reader)
        held.wait()
        got = lock.acquire_write(timeout=seconds)
        lock.release_write()
        return got

    def capacity() -> object:
        limiter = sync.CapacityLimiter(1)
        limiter.acquire_on_behalf_of("other")
        soon(lambda: limiter.release_on_behalf_of("other"))
        return limiter.acquire(timeout=seconds)

    def wait_group() -> object:
        group = sync.WaitGroup()
        group.add(1)
        soon(group.done)
        return group.wait(seconds)

    return {
        "Semaphore": semaphore,
        "Event": event,
        "Condition": condition,
        "Barrier": barrier,
        "Channel": channel,
        "RWLock": rwlock,
        "CapacityLimiter": capacity,
        "WaitGroup": wait_group,
    }


@pytest.mark.parametrize("seconds", LONG)
@pytest.mark.parametrize("name", sorted(sync_waits(1.0)))
def test_a_sync_wait_takes_a_timeout_of_any_length(name: str, seconds: float) -> None:
    assert sync_waits(seconds)[name]() is True


@pytest.mark.parametrize("name", sorted(sync_waits(1.0)))
def test_a_sync_wait_made_of_slices_ends_with_what_it_waits_for(
    name: str, short_slices: None
) -> None:
    # (``soon`` acts after 20 ms, while the wait is in its later slices, or its first.)
    assert sync_waits(0.5)[name]() is True


def test_a_sync_wait_made_of_slices_times_out_at_its_time(short_slices: None) -> None:
    started = time.monotonic()
    assert sync.Event().wait(0.3) is False
    assert time.monotonic() - started >= 0.3
    pipe: sync.Channel[int] = sync.Channel(1)
    with pytest.raises(TimeoutError):
        pipe.recv(timeout=0.2)
    assert time.monotonic() - started >= 0.5


class Clock:
    """``time`` as ``_waits`` sees it, where a sleep takes no time but moves the clock on."""

    def __init__(self) -> None:
        self.now = time.monotonic()
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_rate_limiter_waits_for_a_slot_a_long_way_off(monkeypatch: pytest.MonkeyPatch) -> None:
    # rate=1e-10 puts the second slot 1e10 s away, past what time.sleep takes: it raised
    # OverflowError; now it waits (in slices) as for any slot.
    clock = Clock()
    monkeypatch.setattr(_waits, "time", clock)
    limiter = sync.RateLimiter(1e-10)
    assert limiter.acquire()
    assert limiter.acquire()
    assert max(clock.slept) <= _waits.LONGEST_WAIT
    assert sum(clock.slept) == pytest.approx(1e10, rel=1e-6)


def test_a_lock_refuses_what_threading_refuses() -> None:
    # plait.sync.Lock is a drop-in: past threading.TIMEOUT_MAX its acquire raises as
    # threading's does (CPython's own lock tests check it), at the call, before any wait.
    with pytest.raises(OverflowError, match="timeout value is too large"):
        sync.Lock().acquire(timeout=1e10)


def fail_the_first_time(marker: str) -> str:
    if marker not in tried:
        tried.add(marker)
        raise OSError("not yet")
    return marker


tried: set[str] = set()


def test_a_retry_backoff_of_any_length_is_waited(monkeypatch: pytest.MonkeyPatch) -> None:
    # Retry(backoff=1e10, max_backoff=1e10) is legal: its wait raised OverflowError from
    # time.sleep, and the item failed with that instead of being tried again.
    clock = Clock()
    monkeypatch.setattr(_waits, "time", clock)
    policy = plait.Retry(retries=1, backoff=1e10, max_backoff=1e10, jitter=0)
    assert list(plait.map(fail_the_first_time, ["a"], backend="thread", retries=policy)) == ["a"]
    assert sum(clock.slept) == pytest.approx(1e10, rel=1e-6)


def test_a_shared_rate_waits_for_a_slot_a_long_way_off(monkeypatch: pytest.MonkeyPatch) -> None:
    # The bucket that process workers share: rate=1e-10 put its second slot past time.sleep.
    from plait._rate import SharedBucket

    clock = Clock()
    monkeypatch.setattr(_waits, "time", clock)
    bucket = SharedBucket.create(1e-10)
    bucket.acquire()
    bucket.acquire()
    assert max(clock.slept) <= _waits.LONGEST_WAIT
    assert sum(clock.slept) == pytest.approx(1e10, rel=1e-6)
