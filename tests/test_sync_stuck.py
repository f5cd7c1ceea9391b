"""Waits only another thread can end: the holder is the waiter itself, or a thread that exited.

An RLock, a Condition's lock and a strict Lock are released only by their holder, so such a wait
raises DeadlockError naming the holder. A plain Lock keeps threading's semantics (another thread
may release it) and warns once its grace period is over. Holders are tokens, not thread ids, so
a new thread that gets a dead holder's id is never taken for it.
"""

from __future__ import annotations

import pickle
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from plait import sync

TINY = 0.01  # a grace period that is over before the first re-check


@pytest.fixture(autouse=True)
def detection_on() -> Iterator[None]:
    sync.set_deadlock_detection(True)
    yield
    sync.set_deadlock_detection(True)


def start(body: Callable[[], object], name: str = "worker") -> threading.Thread:
    thread = threading.Thread(target=body, name=name)
    thread.start()
    return thread


def join(*threads: threading.Thread) -> None:
    for thread in threads:
        thread.join(10)
    assert not any(t.is_alive() for t in threads), "a thread hung"


def until(condition: Callable[[], bool]) -> None:
    """Poll until ``condition()`` holds (it must, soon): waits for a fact, not for luck."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.001)


def take_and_exit(lock: sync.Lock | sync.RLock | sync.Condition, name: str) -> int:
    """Acquire ``lock`` in a thread that exits without releasing it; return that thread's id."""
    thread = start(lock.acquire, name)
    join(thread)
    assert thread.ident is not None
    return thread.ident


def thread_with_ident(ident: int, body: Callable[[], object]) -> bool:
    """Run ``body`` in a new thread that got ``ident`` (reused); False if none did in 200 tries."""
    for _ in range(200):
        got: list[bool] = []

        def maybe(got: list[bool] = got) -> None:
            got.append(threading.get_ident() == ident)
            if got[0]:
                body()

        join(start(maybe, "reuser"))
        if got[0]:
            return True
    return False


# --- a plain Lock: threading's semantics, then a warning ------------------------------------


def test_reacquiring_a_plain_lock_blocks_until_another_thread_releases_it() -> None:
    lock = sync.Lock(name="signal")
    results: list[bool] = []

    def take_twice() -> None:
        lock.acquire()
        results.append(lock.acquire())  # threading.Lock: waits for someone else's release()

    worker = start(take_twice)
    until(lambda: lock.statistics().waiting == 1)
    assert worker.is_alive()
    lock.release()  # from another thread, as threading allows
    join(worker)
    assert results == [True]
    assert lock.locked()
    assert lock.statistics().holder == "worker"
    lock.release()


def test_a_stuck_self_wait_warns_naming_the_holder_and_where_it_took_the_lock() -> None:
    lock = sync.Lock(name="signal", warn_after=TINY)
    results: list[bool] = []

    def take_twice() -> None:
        lock.acquire()  # the site the warning must name
        results.append(lock.acquire())

    with pytest.warns(sync.StuckLockWarning) as record:  # noqa: PT031 (warned in another thread)
        worker = start(take_twice, "self-waiter")
        until(lambda: len(record) > 0)
        assert worker.is_alive()  # warned, and still waiting as threading would
        lock.release()
        join(worker)
    assert results == [True]
    assert len(record) == 1  # once per wait
    message = str(record[0].message)
    assert "'self-waiter'" in message
    assert "'signal' is held by this thread itself" in message
    assert "test_sync_stuck.py" in message
    assert "in take_twice" in message
    assert "strict=True" in message
    lock.release()


def test_a_stuck_warning_made_an_error_leaves_the_lock_as_it_was() -> None:
    lock = sync.Lock(name="held", warn_after=TINY)
    lock.acquire()
    with warnings.catch_warnings():
        warnings.simplefilter("error", sync.StuckLockWarning)
        with pytest.raises(sync.StuckLockWarning, match="'held' is held by this thread"):
            lock.acquire()
    stats = lock.statistics()
    assert (stats.locked, stats.waiting, stats.holder) == (True, 0, "MainThread")
    lock.release()
    assert lock.acquire(False)  # nothing left behind in the wait-for graph
    lock.release()


def test_contention_with_a_live_holder_never_warns() -> None:
    lock = sync.Lock(name="busy", warn_after=0.0)
    release = threading.Event()

    def hold() -> None:
        with lock:
            release.wait(10)

    holder = start(hold, "holder")
    until(lock.locked)
    results: list[bool] = []
    waiter = start(lambda: results.append(lock.acquire()), "waiter")
    until(lambda: lock.statistics().waiting == 1)
    time.sleep(0.15)  # past a re-check: a warning would have come (and failed the test) by now
    release.set()
    join(holder, waiter)
    assert results == [True]
    lock.release()


def test_a_plain_lock_whose_holder_exited_can_still_be_released_by_another_thread() -> None:
    lock = sync.Lock(name="orphan", warn_after=TINY)
    take_and_exit(lock, "gone")
    results: list[bool] = []
    with pytest.warns(sync.StuckLockWarning, match="'gone', which exited") as record:  # noqa: PT031
        waiter = start(lambda: results.append(lock.acquire()), "waiter")
        until(lambda: len(record) > 0)
        lock.release()  # threading allows it; the waiter gets the lock
        join(waiter)
    assert results == [True]
    assert lock.statistics().holder == "waiter"
    lock.release()


def test_a_strict_lock_whose_holder_exited_raises_naming_it() -> None:
    lock = sync.Lock(name="orphan", strict=True)
    take_and_exit(lock, "gone")
    started = time.monotonic()
    with pytest.raises(sync.DeadlockError) as info:
        lock.acquire()
    assert time.monotonic() - started < 1.0
    (link,) = info.value.cycle
    assert (link.held_by, link.holder_exited, link.waits_for) == ("gone", True, "orphan")
    assert "'gone' (exited)" in str(info.value)
    assert "which exited without releasing it" in info.value.reason
    assert lock.acquire(timeout=0.01) is False  # a timed wait keeps threading's answer


def test_a_cycle_through_a_self_waiting_thread_is_not_called_a_deadlock() -> None:
    signal, other = sync.Lock(name="signal"), sync.Lock(name="other")
    errors: list[BaseException] = []

    def self_waiter() -> None:
        with other:
            signal.acquire()
            signal.acquire()  # ended by the main thread's release below

    def wants_other() -> None:
        try:
            with other:  # its holder waits for a lock it holds itself: not a cycle with us
                pass
        except BaseException as exc:
            errors.append(exc)

    first = start(self_waiter, "self-waiter")
    until(lambda: signal.statistics().waiting == 1)
    second = start(wants_other, "wants-other")
    until(lambda: other.statistics().waiting == 1)
    signal.release()
    join(first, second)
    assert errors == []
    signal.release()


# --- RLock and Condition: only the holder releases, so the wait raises ----------------------


def test_an_rlock_whose_holder_exited_raises_naming_it() -> None:
    rlock = sync.RLock(name="table")
    take_and_exit(rlock, "crashed-writer")
    with pytest.raises(sync.DeadlockError) as info:
        rlock.acquire()
    (link,) = info.value.cycle
    assert (link.held_by, link.holder_exited) == ("crashed-writer", True)
    assert link.thread == "MainThread"
    assert "'table' is held by thread 'crashed-writer', which exited" in str(info.value)
    assert rlock.acquire(blocking=False) is False
    assert rlock.acquire(timeout=0.01) is False
    with pytest.raises(RuntimeError, match="un-acquired"):
        rlock.release()


def test_an_rlock_waiter_raises_when_the_holder_exits_during_the_wait() -> None:
    rlock = sync.RLock(name="table")
    leave = threading.Event()

    def hold_then_exit() -> None:
        rlock.acquire()
        rlock.acquire()
        leave.wait(10)  # returns holding both levels

    errors: list[BaseException] = []

    def wait_for_it() -> None:
        try:
            rlock.acquire()
        except sync.DeadlockError as exc:
            errors.append(exc)

    holder = start(hold_then_exit, "holder")
    until(rlock.locked)
    waiter = start(wait_for_it, "waiter")
    until(lambda: rlock.statistics().waiting == 1)
    leave.set()
    join(holder, waiter)
    assert len(errors) == 1
    assert "'holder' (exited)" in str(errors[0])
    assert rlock.statistics().waiting == 0


def test_a_new_thread_with_a_dead_holders_id_does_not_inherit_its_rlock() -> None:
    rlock = sync.RLock(name="table")
    plain = threading.RLock()
    dead = take_and_exit(rlock, "first")
    join(start(plain.acquire))  # threading's RLock, for contrast: ids are all it has
    seen: list[object] = []

    def as_the_reused_id() -> None:
        seen.append(rlock.acquire(blocking=False))
        seen.append(rlock._is_owned())
        seen.append(rlock._recursion_count())
        try:
            rlock.release()
        except RuntimeError as exc:
            seen.append(str(exc))
        try:
            rlock.acquire()
        except sync.DeadlockError as exc:
            seen.append(exc.cycle[0].held_by)

    if not thread_with_ident(dead, as_the_reused_id):
        pytest.skip("this platform never reused the thread id in 200 tries")
    assert seen == [False, False, 0, "cannot release un-acquired lock", "first"]


def test_a_new_thread_with_a_dead_holders_id_is_not_taken_for_a_self_waiter() -> None:
    lock = sync.Lock(name="orphan", strict=True)
    dead = take_and_exit(lock, "first")
    errors: list[sync.DeadlockError] = []

    def as_the_reused_id() -> None:
        with pytest.raises(sync.DeadlockError) as info:
            lock.acquire()
        errors.append(info.value)

    if not thread_with_ident(dead, as_the_reused_id):
        pytest.skip("this platform never reused the thread id in 200 tries")
    assert "'first', which exited" in errors[0].reason


def test_a_condition_over_a_plain_lock_refuses_to_wait_for_itself() -> None:
    cond = sync.Condition(sync.Lock(name="guard"))
    with cond:
        assert cond.acquire(False) is False
        with pytest.raises(sync.DeadlockError, match="holds 'guard' itself"):
            cond.acquire()
        assert cond.acquire(timeout=0.01) is False
    assert cond.acquire(False)
    cond.release()


def test_a_condition_whose_owner_exited_raises_naming_it() -> None:
    cond = sync.Condition(name="jobs")
    take_and_exit(cond, "producer")
    with pytest.raises(sync.DeadlockError) as info:
        cond.acquire()
    assert info.value.cycle[0].held_by == "producer"
    assert info.value.cycle[0].holder_exited


def test_a_condition_wait_raises_when_the_notifier_exits_holding_the_lock() -> None:
    cond = sync.Condition(sync.Lock(name="guard"), name="jobs")
    errors: list[BaseException] = []

    def wait_for_notice() -> None:
        cond.acquire()
        try:
            cond.wait()
        except sync.DeadlockError as exc:
            errors.append(exc)  # wait() did not take the lock back: nothing to release
            return
        cond.release()

    def notify_and_exit() -> None:
        cond.acquire()
        cond.notify()  # returns holding the lock: the waiter can never take it back

    waiter = start(wait_for_notice, "waiter")
    until(lambda: cond.statistics().waiting == 1)
    join(start(notify_and_exit, "notifier"), waiter)
    assert len(errors) == 1
    assert "'notifier' (exited)" in str(errors[0])


@pytest.mark.parametrize("lock", [sync.Lock, sync.RLock])
def test_a_with_block_around_such_a_wait_raises_the_deadlock_error(lock: Any) -> None:
    """(``with cond:`` released a lock it did not hold: RuntimeError, hiding the error.)"""
    cond = sync.Condition(lock(name="guard"), name="jobs")
    errors: list[BaseException] = []

    def wait_for_notice() -> None:
        try:
            with cond:
                cond.wait()
        except BaseException as exc:
            errors.append(exc)

    def notify_and_exit() -> None:
        cond.acquire()
        cond.notify()

    waiter = start(wait_for_notice, "waiter")
    until(lambda: cond.statistics().waiting == 1)
    join(start(notify_and_exit, "notifier"), waiter)
    assert [type(error) for error in errors] == [sync.DeadlockError]


# --- arguments and reports ------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_warn_after_must_be_a_finite_number_of_seconds(bad: float) -> None:
    with pytest.raises(ValueError, match="warn_after must be a finite number"):
        sync.Lock(warn_after=bad)


def test_strict_needs_detection() -> None:
    with pytest.raises(ValueError, match="detect=False"):
        sync.Lock(detect=False, strict=True)
    with pytest.raises(ValueError, match="detect=False"):
        sync.Lock(detect=False, warn_after=1.0)


def test_deadlock_errors_keep_their_reason_through_pickle() -> None:
    rlock = sync.RLock(name="table")
    take_and_exit(rlock, "gone")
    with pytest.raises(sync.DeadlockError) as info:
        rlock.acquire()
    copy = pickle.loads(pickle.dumps(info.value))
    assert (copy.reason, copy.cycle, str(copy)) == (
        info.value.reason,
        info.value.cycle,
        str(info.value),
    )


def test_reprs_follow_threadings_layout_and_name_the_holder() -> None:
    lock, rlock = sync.Lock(name="db"), sync.RLock(name="r")
    with lock, rlock, rlock:
        assert repr(lock).startswith("<locked sync.Lock object 'db' owner='MainThread' at 0x")
        assert "owner='MainThread' count=2 at 0x" in repr(rlock)
    take_and_exit(lock, "gone")
    assert "owner='gone (exited)'" in repr(lock)
    lock.release()
