"""The drop-in primitives behave as threading's do: each test runs on both modules.

Written from threading's documented semantics; running them on ``threading`` too shows the tests
say what threading does, and running them on ``plait.sync`` shows plait does the same.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from types import ModuleType

import pytest

from plait import sync


@pytest.fixture(params=["threading", "plait.sync"])
def impl(request: pytest.FixtureRequest) -> ModuleType:
    return threading if request.param == "threading" else sync


def in_thread(body: Callable[[], object]) -> threading.Thread:
    t = threading.Thread(target=body)
    t.start()
    return t


def join(*threads: threading.Thread) -> None:
    for t in threads:
        t.join(5)
    assert not any(t.is_alive() for t in threads)


# --- Lock ---------------------------------------------------------------------------------


def test_lock_acquire_release_and_locked(impl: ModuleType) -> None:
    lock = impl.Lock()
    assert not lock.locked()
    assert lock.acquire() is True
    assert lock.locked()
    assert lock.acquire(False) is False
    assert lock.acquire(blocking=False) is False
    lock.release()
    assert not lock.locked()
    with lock as entered:
        assert entered is True
        assert lock.locked()
    assert not lock.locked()


def test_lock_release_unlocked_is_runtime_error(impl: ModuleType) -> None:
    with pytest.raises(RuntimeError):
        impl.Lock().release()


@pytest.mark.parametrize(
    ("args", "error"),
    [((False, 1), ValueError), ((True, -2), ValueError), ((True, 1e20), OverflowError)],
)
def test_lock_rejects_bad_arguments(
    impl: ModuleType, args: tuple[bool, float], error: type[Exception]
) -> None:
    lock = impl.Lock()
    with pytest.raises(error):
        lock.acquire(*args)
    assert not lock.locked()


def test_lock_timeout_elapses_when_held_by_another_thread(impl: ModuleType) -> None:
    lock = impl.Lock()
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            done.wait(5)

    t = in_thread(hold)
    held.wait(5)
    start = time.monotonic()
    assert lock.acquire(timeout=0.05) is False
    assert time.monotonic() - start >= 0.04
    assert lock.acquire(True, 0) is False
    done.set()
    join(t)
    assert lock.acquire(timeout=1) is True
    lock.release()


def test_lock_may_be_released_by_another_thread(impl: ModuleType) -> None:
    lock = impl.Lock()
    lock.acquire()
    join(in_thread(lock.release))
    assert not lock.locked()


def test_lock_excludes_other_threads(impl: ModuleType) -> None:
    lock = impl.Lock()
    counter = [0]

    def bump() -> None:
        for _ in range(2000):
            with lock:
                value = counter[0]
                time.sleep(0) if value % 500 == 0 else None
                counter[0] = value + 1

    join(*[in_thread(bump) for _ in range(4)])
    assert counter[0] == 8000


# --- RLock --------------------------------------------------------------------------------


def test_rlock_is_reentrant_and_counts_levels(impl: ModuleType) -> None:
    r = impl.RLock()
    assert r.acquire()
    assert r.acquire(False)
    with r:
        pass
    r.release()
    other: list[bool] = []
    join(in_thread(lambda: other.append(r.acquire(False))))
    assert other == [False]  # still held once
    r.release()
    join(in_thread(lambda: other.append(r.acquire(False))))
    assert other == [False, True]


def test_rlock_release_by_non_owner_is_runtime_error(impl: ModuleType) -> None:
    r = impl.RLock()
    with pytest.raises(RuntimeError):
        r.release()
    r.acquire()
    errors: list[BaseException] = []

    def release() -> None:
        try:
            r.release()
        except RuntimeError as exc:
            errors.append(exc)

    join(in_thread(release))
    assert len(errors) == 1
    r.release()


# --- Semaphore ----------------------------------------------------------------------------


def test_semaphore_counts(impl: ModuleType) -> None:
    s = impl.Semaphore(2)
    assert s.acquire()
    assert s.acquire(blocking=False)
    assert s.acquire(blocking=False) is False
    assert s.acquire(timeout=0.01) is False
    s.release(2)
    assert s.acquire(False)
    assert s.acquire(False)
    s.release()
    with s:
        assert s.acquire(False) is False
    assert s.acquire(False)


def test_semaphore_rejects_bad_arguments(impl: ModuleType) -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        impl.Semaphore(-1)
    s = impl.Semaphore(1)
    with pytest.raises(ValueError, match="n must be one or more"):
        s.release(0)
    with pytest.raises(ValueError, match="can't specify timeout"):
        s.acquire(False, 1)


def test_semaphore_release_n_wakes_n_waiters(impl: ModuleType) -> None:
    s = impl.Semaphore(0)
    passed = impl.Semaphore(0)
    threads = [in_thread(lambda: (s.acquire(timeout=5), passed.release())) for _ in range(3)]
    s.release(2)
    assert passed.acquire(timeout=5)
    assert passed.acquire(timeout=5)
    assert passed.acquire(timeout=0.05) is False
    s.release()
    join(*threads)


def test_unbounded_semaphore_may_exceed_its_start(impl: ModuleType) -> None:
    s = impl.Semaphore(1)
    s.release()
    assert s.acquire(False)
    assert s.acquire(False)


def test_bounded_semaphore_refuses_extra_release(impl: ModuleType) -> None:
    s = impl.BoundedSemaphore(2)
    with pytest.raises(ValueError, match="released too many times"):
        s.release()
    s.acquire()
    with pytest.raises(ValueError, match="released too many times"):
        s.release(2)
    s.release()


# --- Event --------------------------------------------------------------------------------


def test_event_set_clear_wait(impl: ModuleType) -> None:
    e = impl.Event()
    assert not e.is_set()
    assert e.wait(0.01) is False
    assert e.wait(0) is False
    e.set()
    assert e.is_set()
    assert e.wait() is True
    assert e.wait(0) is True
    e.clear()
    assert not e.is_set()


def test_event_set_wakes_all_waiters(impl: ModuleType) -> None:
    e = impl.Event()
    results: list[bool] = []
    threads = [in_thread(lambda: results.append(e.wait(5))) for _ in range(4)]
    e.set()
    join(*threads)
    assert results == [True] * 4


def test_event_wait_returns_true_when_set_then_cleared(impl: ModuleType) -> None:
    e = impl.Event()
    cond_waiting = threading.Event()
    results: list[bool] = []

    def wait() -> None:
        cond_waiting.set()
        results.append(e.wait(5))

    t = in_thread(wait)
    cond_waiting.wait(5)
    time.sleep(0.05)  # give it time to block; either way it must report True
    e.set()
    e.clear()
    join(t)
    assert results == [True]


# --- Condition ----------------------------------------------------------------------------


@pytest.mark.parametrize("lock_kind", ["default", "Lock", "RLock"])
def test_condition_wait_requires_the_lock(impl: ModuleType, lock_kind: str) -> None:
    cond = (
        impl.Condition() if lock_kind == "default" else impl.Condition(getattr(impl, lock_kind)())
    )
    with pytest.raises(RuntimeError):
        cond.wait(0.01)
    with pytest.raises(RuntimeError):
        cond.notify()
    with cond:
        assert cond.wait(0.01) is False
        assert cond.wait(0) is False
        cond.notify()
        cond.notify_all()


def poll(predicate: Callable[[], bool], limit: float = 5.0) -> None:
    """Wait for a state another thread reaches; for states no primitive announces."""
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "state never reached"
        time.sleep(0.001)


def test_condition_notify_wakes_one_then_all(impl: ModuleType) -> None:
    cond = impl.Condition(impl.Lock())
    woken: list[int] = []
    ready = [0]

    def waiter(i: int) -> None:
        with cond:
            ready[0] += 1  # counted under the lock, so it is waiting once main can look
            if cond.wait(5):
                woken.append(i)

    threads = [in_thread(lambda i=i: waiter(i)) for i in range(3)]  # type: ignore[misc]

    def all_waiting() -> bool:
        with cond:
            return bool(ready[0] == 3)

    poll(all_waiting)
    with cond:
        cond.notify()
    poll(lambda: len(woken) == 1)
    time.sleep(0.05)  # a second wake-up, if notify() woke two, would show by now
    assert len(woken) == 1
    with cond:
        cond.notify_all()
    join(*threads)
    assert sorted(woken) == [0, 1, 2]


def test_condition_wait_for_returns_the_predicate_value(impl: ModuleType) -> None:
    cond = impl.Condition()
    box: list[int] = []
    with cond:
        assert cond.wait_for(lambda: len(box), 0.01) == 0

    def put() -> None:
        with cond:
            box.append(1)
            cond.notify()

    t = in_thread(put)
    with cond:
        assert cond.wait_for(lambda: len(box), 5) == 1
    join(t)


def test_condition_with_rlock_held_twice_still_waits(impl: ModuleType) -> None:
    lock = impl.RLock()
    cond = impl.Condition(lock)
    with lock, cond:
        assert cond.wait(0.01) is False
        got: list[bool] = []
        join(in_thread(lambda: got.append(lock.acquire(False))))
        assert got == [False]  # taken back in full after the wait


# --- Barrier ------------------------------------------------------------------------------


def test_barrier_returns_distinct_indices_and_runs_the_action_once(impl: ModuleType) -> None:
    actions: list[int] = []
    b = impl.Barrier(3, action=lambda: actions.append(1))
    assert (b.parties, b.n_waiting, b.broken) == (3, 0, False)
    indices: list[int] = []
    threads = [in_thread(lambda: indices.append(b.wait(5))) for _ in range(2)]
    indices.append(b.wait(5))
    join(*threads)
    assert sorted(indices) == [0, 1, 2]
    assert actions == [1]
    # the barrier is reusable
    threads = [in_thread(lambda: indices.append(b.wait(5))) for _ in range(2)]
    b.wait(5)
    join(*threads)
    assert actions == [1, 1]


def test_barrier_timeout_breaks_it_for_everyone_until_reset(impl: ModuleType) -> None:
    b = impl.Barrier(2)
    with pytest.raises(threading.BrokenBarrierError):
        b.wait(0.02)
    assert b.broken
    with pytest.raises(threading.BrokenBarrierError):
        b.wait(1)
    b.reset()
    assert not b.broken
    t = in_thread(lambda: b.wait(5))
    b.wait(5)
    join(t)


def test_barrier_abort_and_failing_action(impl: ModuleType) -> None:
    b = impl.Barrier(2)
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            b.wait(5)
        except threading.BrokenBarrierError as exc:
            errors.append(exc)

    t = in_thread(wait)
    while b.n_waiting != 1:
        time.sleep(0.001)
    b.abort()
    join(t)
    assert len(errors) == 1
    assert b.broken

    def fail() -> None:
        raise KeyError("action")

    bad = impl.Barrier(1, action=fail)
    with pytest.raises(KeyError):
        bad.wait()
    assert bad.broken


def test_barrier_reset_breaks_current_waiters(impl: ModuleType) -> None:
    b = impl.Barrier(2)
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            b.wait(5)
        except threading.BrokenBarrierError as exc:
            errors.append(exc)

    t = in_thread(wait)
    while b.n_waiting != 1:
        time.sleep(0.001)
    b.reset()
    join(t)
    assert len(errors) == 1
    assert not b.broken


# --- the same methods ---------------------------------------------------------------------

DROP_INS = ["Lock", "RLock", "Semaphore", "BoundedSemaphore", "Event", "Condition", "Barrier"]


def make(module: ModuleType, name: str) -> object:
    return getattr(module, name)(*((1,) if name == "Barrier" else ()))


@pytest.mark.parametrize("name", DROP_INS)
def test_each_drop_in_has_every_public_name_threadings_has(name: str) -> None:
    """Compared on the Python that runs the tests, so a name a new Python adds shows up."""

    def public(obj: object) -> set[str]:
        return {attribute for attribute in dir(obj) if not attribute.startswith("_")}

    assert public(make(threading, name)) - public(make(sync, name)) == set()


def outcome(call: Callable[[], object]) -> tuple[object, list[tuple[type[Warning], str]]]:
    """What ``call()`` returns and the warnings it gives, each once."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    return result, [(w.category, str(w.message)) for w in caught]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("detect", [True, False])
def test_the_old_names_behave_and_warn_as_threadings_do(detect: bool) -> None:
    """``Lock.acquire_lock``, ``Event.isSet``, ``Condition.notifyAll``...: the same results
    and the same warnings (or none) as threading's on this Python."""

    def old_names(impl: ModuleType) -> list[tuple[object, list[tuple[type[Warning], str]]]]:
        lock = sync.Lock(detect=detect) if impl is sync else threading.Lock()
        event, cond = impl.Event(), impl.Condition()
        seen = [
            outcome(lock.acquire_lock),
            outcome(lock.locked_lock),
            outcome(lambda: lock.acquire_lock(False)),
            outcome(lock.release_lock),
            outcome(lock.locked_lock),
            outcome(event.isSet),
        ]
        event.set()
        seen.append(outcome(event.isSet))
        with cond:
            seen.append(outcome(cond.notifyAll))
        return seen

    assert old_names(sync) == old_names(threading)


# --- a NaN timeout ------------------------------------------------------------------------
# threading's answers: a lock refuses NaN; Event and Condition waits take it as "do not block"
# (NaN > 0 is false). Semaphore, Barrier and Condition.wait_for hang on it in threading (their
# deadline never passes), so plait's do too: those are not tested here.

NAN = float("nan")


@pytest.mark.timeout(10)
def test_event_wait_with_a_nan_timeout_returns_at_once(impl: ModuleType) -> None:
    """(plait's waited a day at a time, for ever: NaN is no number of days.)"""
    e = impl.Event()
    assert e.wait(NAN) is False
    e.set()
    assert e.wait(NAN) is True


@pytest.mark.timeout(10)
@pytest.mark.parametrize("kind", ["Lock", "RLock"])
def test_lock_acquire_refuses_a_nan_timeout(impl: ModuleType, kind: str) -> None:
    """(plait's took the lock if it was free, and an RLock's holder took it again.)"""
    lock = getattr(impl, kind)()
    for args in [(True, NAN), (False, NAN)]:
        with pytest.raises(ValueError, match="NaN"):
            lock.acquire(*args)
    assert lock.acquire(False)  # the refusals left it free
    with pytest.raises(ValueError, match="NaN"):
        lock.acquire(timeout=NAN)  # held: a wait (Lock) or a re-entry (RLock), refused alike
    lock.release()
    other: list[bool] = []
    join(in_thread(lambda: other.append(lock.acquire(False))))
    assert other == [True]  # held once, released once: free for another thread


@pytest.mark.timeout(10)
@pytest.mark.parametrize("lock_kind", ["default", "Lock", "RLock"])
def test_condition_takes_a_nan_timeout_as_its_lock_does(impl: ModuleType, lock_kind: str) -> None:
    cond = (
        impl.Condition() if lock_kind == "default" else impl.Condition(getattr(impl, lock_kind)())
    )
    with pytest.raises(ValueError, match="NaN"):
        cond.acquire(True, NAN)
    with cond:
        assert cond.wait(NAN) is False
