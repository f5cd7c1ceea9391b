"""statistics(): frozen snapshots that count what happened, and names that show up."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

import plait.sync
from plait import sync


def test_lock_statistics_count_contention() -> None:
    lock = sync.Lock(name="db")
    held, go = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            go.wait(5)

    t = threading.Thread(target=hold, name="holder")
    t.start()
    held.wait(5)
    stats = lock.statistics()
    assert (stats.name, stats.locked, stats.holder) == ("db", True, "holder")
    assert stats.held_at is not None
    assert "test_sync_stats.py" in stats.held_at

    def wait_for_it() -> None:
        if lock.acquire(timeout=5):
            lock.release()

    waiter = threading.Thread(target=wait_for_it)
    waiter.start()
    while lock.statistics().waiting == 0:
        time.sleep(0.001)
    time.sleep(0.02)
    go.set()
    waiter.join(5)
    t.join(5)
    stats = lock.statistics()
    assert stats.acquisitions == 2
    assert stats.contended == 1
    assert stats.longest_wait >= 0.02
    assert stats.total_wait == stats.longest_wait
    assert (stats.locked, stats.holder, stats.waiting) == (False, None, 0)
    assert repr(lock).startswith("<unlocked sync.Lock object 'db' at 0x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.acquisitions = 0  # type: ignore[misc]


def test_every_primitive_reports_its_name() -> None:
    made = [
        sync.Lock(name="n"),
        sync.RLock(name="n"),
        sync.Semaphore(1, name="n"),
        sync.BoundedSemaphore(1, name="n"),
        sync.Event(name="n"),
        sync.Condition(name="n"),
        sync.Barrier(1, name="n"),
        sync.RWLock(name="n"),
        sync.RateLimiter(5, name="n"),
        sync.CapacityLimiter(1, name="n"),
        sync.WaitGroup(name="n"),
        sync.Channel[int](1, name="n"),
    ]
    for primitive in made:
        stats = primitive.statistics()  # type: ignore[attr-defined]
        assert isinstance(stats, sync.Statistics)
        assert stats.name == "n"
        assert "'n'" in repr(primitive)


def test_semaphore_event_condition_barrier_counts() -> None:
    sem = sync.Semaphore(1)
    with sem:
        assert sem.acquire(timeout=0.01) is False
    s = sem.statistics()
    assert (s.acquisitions, s.contended, s.timeouts, s.value) == (1, 1, 1, 1)

    event = sync.Event()
    event.wait(0.01)
    event.set()
    event.wait()
    e = event.statistics()
    assert (e.acquisitions, e.timeouts, e.is_set) == (1, 1, True)

    cond = sync.Condition()
    with cond:
        cond.wait(0.01)
        cond.notify()
    c = cond.statistics()
    assert (c.acquisitions, c.timeouts, c.notifications) == (0, 1, 0)

    barrier = sync.Barrier(1)
    barrier.wait()
    barrier.wait()
    b = barrier.statistics()
    assert (b.acquisitions, b.cycles, b.broken, b.parties) == (2, 2, False, 1)


def fail() -> None:
    raise KeyError("action")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("how", ["abort", "reset", "failing action"])
def test_a_barrier_broken_under_its_waiter_is_not_a_timeout(how: str) -> None:
    """(Every wait that ended broken counted as a timeout, though none had one.)"""
    barrier = sync.Barrier(2, action=fail if how == "failing action" else None, name="b")
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            barrier.wait()  # no timeout at all
        except threading.BrokenBarrierError as exc:
            errors.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    deadline = time.monotonic() + 10
    while barrier.n_waiting != 1:  # a state no primitive announces
        assert time.monotonic() < deadline, "the waiter never arrived"
        time.sleep(0.001)
    if how == "failing action":
        with pytest.raises(KeyError):
            barrier.wait()  # the last arrival: runs the action, which breaks the barrier
    else:
        getattr(barrier, how)()
    waiter.join(10)
    assert not waiter.is_alive()
    assert len(errors) == 1
    stats = barrier.statistics()
    assert (stats.timeouts, stats.contended, stats.acquisitions) == (0, 1, 0)

    barrier.reset()
    with pytest.raises(threading.BrokenBarrierError):
        barrier.wait(0.01)  # a real timeout still counts
    stats = barrier.statistics()
    assert (stats.timeouts, stats.contended, stats.acquisitions) == (1, 2, 0)


def test_detection_off_keeps_statistics() -> None:
    lock = sync.Lock(detect=False)
    with lock:
        stats = lock.statistics()
    assert (stats.acquisitions, stats.locked, stats.holder, stats.held_at) == (1, True, None, None)
    assert isinstance(lock, sync.Lock)


def test_all_is_sorted_and_complete() -> None:
    public = {name for name in dir(plait.sync) if not name.startswith("_")}
    assert plait.sync.__all__ == sorted(plait.sync.__all__, key=lambda n: (n[0].islower(), n))
    assert set(plait.sync.__all__) == public
