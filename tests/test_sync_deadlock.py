"""Deadlocks among plait locks are refused within a second, and non-deadlocks are left alone."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from plait import sync


def run_threads(*bodies: Callable[[], object], limit: float = 5.0) -> list[BaseException | None]:
    """Run each body in its own named thread, join them all, return what each raised."""
    errors: list[BaseException | None] = [None] * len(bodies)

    def wrap(i: int, body: Callable[[], object]) -> None:
        try:
            body()
        except BaseException as exc:
            errors[i] = exc

    threads = [
        threading.Thread(target=wrap, args=(i, body), name=f"worker-{i}")
        for i, body in enumerate(bodies)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(limit)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return errors


@pytest.fixture(autouse=True)
def detection_on() -> Iterator[None]:
    sync.set_deadlock_detection(True)
    yield
    sync.set_deadlock_detection(True)


def take_in_order(first: sync.Lock, second: sync.Lock, meet: threading.Barrier) -> None:
    with first:
        meet.wait()
        with second:
            pass


def test_two_lock_inversion_raises_in_one_thread_and_the_other_finishes() -> None:
    a, b = sync.Lock(name="a"), sync.Lock(name="b")
    meet = threading.Barrier(2)
    start = time.monotonic()
    errors = run_threads(lambda: take_in_order(a, b, meet), lambda: take_in_order(b, a, meet))
    assert time.monotonic() - start < 1.0
    deadlocks = [e for e in errors if isinstance(e, sync.DeadlockError)]
    assert len(deadlocks) == 1, errors
    assert [e for e in errors if e is not None] == deadlocks
    cycle = deadlocks[0].cycle
    assert len(cycle) == 2
    assert {link.waits_for for link in cycle} == {"a", "b"}
    assert {link.thread for link in cycle} == {"worker-0", "worker-1"}
    assert all(link.thread != link.held_by for link in cycle)
    assert all("test_sync_deadlock.py" in link.held_since for link in cycle)
    assert all("take_in_order" in link.waits_at for link in cycle)
    assert "'a'" in str(deadlocks[0])
    assert "'b'" in str(deadlocks[0])
    assert not a.locked()
    assert not b.locked()


def test_three_thread_cycle_is_named_in_full() -> None:
    locks = [sync.Lock(name=f"L{i}") for i in range(3)]
    meet = threading.Barrier(3)
    bodies = [(lambda i=i: take_in_order(locks[i], locks[(i + 1) % 3], meet)) for i in range(3)]
    start = time.monotonic()
    errors = run_threads(*bodies)
    assert time.monotonic() - start < 1.0
    deadlocks = [e for e in errors if isinstance(e, sync.DeadlockError)]
    assert len(deadlocks) == 1, errors
    assert sum(e is not None for e in errors) == 1
    cycle = deadlocks[0].cycle
    assert len(cycle) == 3
    assert {link.waits_for for link in cycle} == {"L0", "L1", "L2"}
    assert len({link.thread for link in cycle}) == 3


def test_cycle_through_an_rlock_is_detected() -> None:
    a, b = sync.RLock(name="ra"), sync.Lock(name="b")
    meet = threading.Barrier(2)

    def reenter_then_b() -> None:
        with a, a:
            meet.wait()
            with b:
                pass

    def b_then_a() -> None:
        with b:
            meet.wait()
            with a:
                pass

    errors = run_threads(reenter_then_b, b_then_a)
    assert sum(isinstance(e, sync.DeadlockError) for e in errors) == 1, errors


def test_reacquiring_a_strict_lock_in_the_same_thread_raises_at_once() -> None:
    lock = sync.Lock(name="self", strict=True)
    with lock:
        assert lock.acquire(False) is False
        with pytest.raises(sync.DeadlockError) as info:
            lock.acquire()
    assert len(info.value.cycle) == 1
    assert info.value.cycle[0].held_by == threading.current_thread().name
    assert "holds 'self' itself" in str(info.value)
    assert not lock.locked()


def test_rlock_reentry_is_not_a_deadlock() -> None:
    r = sync.RLock(name="r")
    with r, r:
        assert r.acquire()
        r.release()
        assert r.statistics().recursion == 2
    assert not r.locked()


def test_rlock_contention_between_threads_is_not_a_deadlock() -> None:
    r = sync.RLock(name="r")
    held = threading.Event()
    done = threading.Event()

    def holder() -> None:
        with r, r:
            held.set()
            done.wait(2)

    def waiter() -> None:
        held.wait(2)
        with r:  # blocks until the holder leaves: contention, no cycle
            pass

    def finisher() -> None:
        held.wait(2)
        while r.statistics().waiting == 0:
            time.sleep(0.001)
        done.set()

    assert run_threads(holder, waiter, finisher) == [None, None, None]
    assert r.statistics().contended == 1


@pytest.mark.parametrize("make_lock", [sync.Lock, sync.RLock])
def test_condition_wait_releases_its_lock_so_others_can_take_it(
    make_lock: Callable[[], sync.Lock | sync.RLock],
) -> None:
    lock = make_lock()
    cond = sync.Condition(lock)
    waiting = threading.Event()
    results: list[bool] = []

    def waiter() -> None:
        with cond:
            if isinstance(lock, sync.RLock):
                lock.acquire()  # held twice: wait must release both levels
            waiting.set()
            results.append(cond.wait(timeout=3))
            if isinstance(lock, sync.RLock):
                lock.release()

    def notifier() -> None:
        waiting.wait(2)
        # the waiter is inside wait(): it must not be a holder, or this would block
        assert cond.acquire(timeout=2)
        try:
            stats = lock.statistics()
            assert stats.holder == threading.current_thread().name
            cond.notify()
        finally:
            cond.release()

    assert run_threads(waiter, notifier) == [None, None]
    assert results == [True]


def until(condition: Callable[[], bool]) -> None:
    """Poll until ``condition()`` holds (it must, soon): waits for a fact, not for luck."""
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.001)


class HookedRLock(sync.RLock):
    """An RLock that calls ``on_release`` as a Condition's wait() lets go of it, before that
    wait blocks: what another thread does there happens while the waiter waits, for sure."""

    def __init__(self, on_release: Callable[[], None], *, name: str) -> None:
        super().__init__(name=name)
        self.on_release = on_release

    def _release_save(self) -> int:
        count = super()._release_save()
        self.on_release()
        return count


@pytest.mark.timeout(30)
def test_a_condition_wait_that_cannot_take_its_lock_back_leaves_no_waiter_behind() -> None:
    """(The waiter was taken off the condition only once its lock was back: a DeadlockError
    there left it queued, ``waiting`` stayed 1, and the next notify() woke the dead waiter
    instead of a live one.)"""
    other = sync.Lock(name="other")
    taker: list[threading.Thread] = []

    def take_both() -> None:
        with cond, other:  # other is the waiter's: waits, until the waiter's error lets it go
            pass

    def let_another_in() -> None:
        if not taker:  # the first wait only
            taker.append(threading.Thread(target=take_both, name="taker"))
            taker[0].start()
            until(lambda: other.statistics().waiting == 1)

    cond = sync.Condition(HookedRLock(let_another_in, name="cond.lock"), name="cond")

    def wait_holding_other() -> None:
        with other, cond:
            # times out (no one notifies); taking the lock back would wait for the taker,
            # which waits for other: the cycle is refused here
            cond.wait(timeout=0.01)

    errors = run_threads(wait_holding_other)
    taker[0].join(5)
    assert not taker[0].is_alive()
    assert isinstance(errors[0], sync.DeadlockError), errors
    stats = cond.statistics()
    assert (stats.waiting, stats.timeouts, stats.acquisitions) == (0, 1, 0)
    assert "0 waiting" in repr(cond)
    with cond:
        cond.notify()  # nobody waits: nobody is woken
    assert cond.statistics().notifications == 0

    woken: list[bool] = []

    def wait_for_notice() -> None:
        with cond:
            woken.append(cond.wait(timeout=10))

    waiter = threading.Thread(target=wait_for_notice)
    waiter.start()
    until(lambda: cond.statistics().waiting == 1)
    with cond:
        cond.notify()
    waiter.join(15)
    assert woken == [True]
    assert cond.statistics().notifications == 1


def test_timed_acquire_is_not_a_deadlock() -> None:
    a, b = sync.Lock(name="a"), sync.Lock(name="b")
    meet = threading.Barrier(2)
    got: list[bool] = []

    def patient() -> None:
        with a:
            meet.wait()
            got.append(b.acquire(timeout=0.3))

    errors = run_threads(patient, lambda: take_in_order(b, a, meet))
    assert errors == [None, None]
    assert got == [False]


def test_detection_off_lets_the_cycle_be_broken_by_timeouts() -> None:
    sync.set_deadlock_detection(False)
    lock = sync.Lock()
    assert not sync.deadlock_detection_enabled()
    with lock:
        assert lock.acquire(timeout=0.05) is False  # threading's answer: no error
    sync.set_deadlock_detection(True)
    checked = sync.Lock(detect=False)
    with checked:
        assert checked.acquire(timeout=0.05) is False


def test_detection_does_not_miss_a_cycle_closing_while_others_arrive() -> None:
    # many rounds of the classic inversion: the detector must catch each one, never hang
    for _ in range(20):
        a, b = sync.Lock(), sync.Lock()
        meet = threading.Barrier(2)
        errors = run_threads(
            lambda: take_in_order(a, b, meet),  # noqa: B023
            lambda: take_in_order(b, a, meet),  # noqa: B023
        )
        assert sum(isinstance(e, sync.DeadlockError) for e in errors) == 1


def test_lock_order_checker_warns_about_an_inversion_that_did_not_deadlock() -> None:
    a, b = sync.Lock(name="first"), sync.Lock(name="second")
    sync.enable_lock_order_checks()
    try:
        with a, b:
            pass
        with b, pytest.warns(sync.LockOrderWarning, match="'first'.*'second'") as record:
            a.acquire()
        a.release()
        with b, a:  # each pair is reported once
            pass
    finally:
        sync.disable_lock_order_checks()
    message = str(record[0].message)
    assert message.count("test_sync_deadlock.py") >= 3


def test_lock_order_warning_as_error_leaves_the_lock_free() -> None:
    a, b = sync.Lock(name="p"), sync.Lock(name="q")
    sync.enable_lock_order_checks()
    try:
        with a, b:
            pass
        with b:
            with pytest.raises(sync.LockOrderWarning):  # pytest turns warnings into errors
                a.acquire()
            assert not a.locked()
    finally:
        sync.disable_lock_order_checks()


def test_lock_order_checker_follows_transitive_orders() -> None:
    x, y, z = sync.Lock(name="x"), sync.Lock(name="y"), sync.Lock(name="z")
    sync.enable_lock_order_checks()
    try:
        with x, y:
            pass
        with y, z:
            pass
        with z, pytest.warns(sync.LockOrderWarning, match="'x'"):
            x.acquire()
        x.release()
    finally:
        sync.disable_lock_order_checks()


def test_lock_order_checker_is_quiet_for_consistent_orders() -> None:
    a, b = sync.Lock(), sync.Lock()
    sync.enable_lock_order_checks()
    try:
        for _ in range(3):
            with a, b:
                pass
    finally:
        sync.disable_lock_order_checks()
