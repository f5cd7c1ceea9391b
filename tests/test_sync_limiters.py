"""RateLimiter, CapacityLimiter and WaitGroup."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from plait import sync


def join(*threads: threading.Thread) -> None:
    for t in threads:
        t.join(5)
    assert not any(t.is_alive() for t in threads)


def test_rate_limiter_allows_the_burst_then_refuses() -> None:
    limiter = sync.RateLimiter(10, burst=3)
    assert [limiter.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert limiter.acquire(timeout=0) is False  # the next token is ~0.1 s away
    assert limiter.statistics().rejected == 2


def test_rate_limiter_holds_the_rate_across_threads() -> None:
    limiter = sync.RateLimiter(400)
    stop_at = time.monotonic() + 0.25
    counts = [0] * 4

    def work(i: int) -> None:
        while time.monotonic() < stop_at:
            if limiter.acquire(timeout=1):
                counts[i] += 1

    start = time.monotonic()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    join(*threads)
    elapsed = time.monotonic() - start
    # 1 up front, then one per 1/400 s; the last grants may land just after stop_at
    assert sum(counts) <= 1 + 400 * elapsed + 4
    assert sum(counts) >= 400 * 0.25 * 0.8
    stats = limiter.statistics()
    assert stats.acquisitions == sum(counts)
    assert stats.waiting == 0


def test_rate_limiter_refuses_a_timeout_too_short_without_waiting() -> None:
    limiter = sync.RateLimiter(1)
    assert limiter.acquire()
    start = time.monotonic()
    assert limiter.acquire(timeout=0.2) is False
    assert time.monotonic() - start < 0.1


def test_rate_limiter_argument_checks() -> None:
    with pytest.raises(ValueError, match="rate"):
        sync.RateLimiter(0)
    with pytest.raises(ValueError, match="burst"):
        sync.RateLimiter(1, burst=0.5)
    with pytest.raises(ValueError, match="tokens"):
        sync.RateLimiter(1, burst=2).acquire(3)


def test_capacity_limiter_limits_and_tracks_borrowers() -> None:
    limiter = sync.CapacityLimiter(2, name="db")
    limiter.acquire_on_behalf_of("job-1")
    with limiter:
        stats = limiter.statistics()
        assert stats.borrowed == 2
        assert set(stats.borrowers) == {"'job-1'", threading.current_thread().name}
        assert limiter.available_tokens == 0
        assert limiter.acquire_on_behalf_of("job-2", blocking=False) is False
        assert limiter.acquire_on_behalf_of("job-2", timeout=0.01) is False
        with pytest.raises(RuntimeError, match="already holds"):
            limiter.acquire()
    limiter.release_on_behalf_of("job-1")
    with pytest.raises(RuntimeError, match="holds no token"):
        limiter.release()
    assert limiter.statistics().borrowed == 0


def test_capacity_limiter_serves_waiters_in_order_and_grows() -> None:
    limiter = sync.CapacityLimiter(1)
    limiter.acquire()
    order: list[int] = []

    def wait_turn(i: int) -> None:
        limiter.acquire_on_behalf_of(i, timeout=5)
        order.append(i)

    threads = []
    for i in range(3):
        threads.append(threading.Thread(target=wait_turn, args=(i,)))
        threads[-1].start()
        while limiter.statistics().waiting != i + 1:
            time.sleep(0.001)
    limiter.release()
    while not order:
        time.sleep(0.001)
    assert order == [0]
    limiter.release_on_behalf_of(0)  # the slot goes to the longest waiter, 1, not to 2
    while len(order) < 2:
        time.sleep(0.001)
    assert order == [0, 1]
    limiter.total_tokens = 2  # growing lets the last waiter in at once
    join(*threads)
    assert order == [0, 1, 2]
    assert limiter.borrowed_tokens == 2
    with pytest.raises(ValueError, match="total_tokens"):
        limiter.total_tokens = 0


def test_waitgroup_waits_for_every_job() -> None:
    wg = sync.WaitGroup()
    assert wg.wait(0) is True
    release = threading.Event()
    done: list[int] = []

    def job(i: int) -> None:
        release.wait(5)
        done.append(i)
        wg.done()

    wg.add(3)
    threads = [threading.Thread(target=job, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    assert wg.wait(0.01) is False
    release.set()
    assert wg.wait(5) is True
    assert sorted(done) == [0, 1, 2]
    join(*threads)
    stats = wg.statistics()
    assert (stats.pending, stats.added, stats.timeouts) == (0, 3, 1)


def test_waitgroup_negative_counter_is_an_error() -> None:
    wg = sync.WaitGroup()
    with pytest.raises(ValueError, match="negative"):
        wg.done()
    wg.add(2)
    with pytest.raises(ValueError, match="negative"):
        wg.add(-3)
    assert wg.pending == 2


class _InterruptedWait:
    """A parked lock whose wait is ended by Ctrl-C, as a signal ends a real one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if not self._lock.acquire(False):  # (the limiter parks it first: then the wait)
            raise KeyboardInterrupt
        return True

    def release(self) -> None:
        self._lock.release()


def test_a_capacity_limiter_wait_ended_by_ctrl_c_leaves_no_one_in_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It stayed in line: the next release handed the slot to that nobody, for good (every
    later acquire timed out, and its thread's retry was told it already held a token)."""
    from plait.sync import _limiters

    limiter = sync.CapacityLimiter(1, name="db")
    assert limiter.acquire_on_behalf_of("holder")
    monkeypatch.setattr(_limiters, "allocate_lock", _InterruptedWait)
    with pytest.raises(KeyboardInterrupt):
        limiter.acquire_on_behalf_of("interrupted")
    monkeypatch.undo()
    assert limiter.statistics().waiting == 0
    limiter.release_on_behalf_of("holder")
    assert limiter.statistics().borrowed == 0
    assert limiter.acquire_on_behalf_of("interrupted", timeout=5)


@pytest.mark.parametrize("seconds", [float("nan"), float("inf")])
def test_a_wait_whose_timeout_no_clock_reaches_is_refused(seconds: float) -> None:
    """NaN: no deadline compares as passed, and the wait spun at full CPU for ever."""
    full = sync.Channel[int](1)
    full.send(1)
    group = sync.WaitGroup()
    group.add(1)
    rwlock = sync.RWLock()
    limiter = sync.CapacityLimiter(1)
    waits: list[Callable[[], object]] = [
        lambda: full.send(2, timeout=seconds),
        lambda: sync.Channel[int](1).recv(timeout=seconds),
        lambda: group.wait(timeout=seconds),
        lambda: rwlock.acquire_write(timeout=seconds),
        lambda: limiter.acquire(timeout=seconds),
        lambda: sync.RateLimiter(1).acquire(timeout=seconds),
    ]
    for wait in waits:
        with pytest.raises(ValueError, match="timeout must be a finite number of seconds"):
            wait()
