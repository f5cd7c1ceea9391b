"""Many threads at once: counts stay exact, no false deadlocks, nothing hangs."""

from __future__ import annotations

import random
import threading

from plait import sync


def run(workers: int, body: object) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(workers)

    def wrap(i: int) -> None:
        start.wait(5)
        try:
            body(i)  # type: ignore[operator]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not any(t.is_alive() for t in threads)
    return errors


def test_consistent_lock_order_under_contention_never_reports_a_deadlock() -> None:
    locks = [sync.Lock(name=f"L{i}") for i in range(4)]
    total = [0]

    def body(i: int) -> None:
        rng = random.Random(i)
        for _ in range(300):
            a, b = sorted(rng.sample(range(4), 2))  # always in index order: no cycle possible
            with locks[a], locks[b]:
                total[0] += 1

    assert run(16, body) == []
    assert total[0] == 16 * 300
    assert sum(lock.statistics().acquisitions for lock in locks) == 2 * 16 * 300


def test_random_orders_only_ever_raise_deadlock_error_and_stay_consistent() -> None:
    locks = [sync.Lock(name=f"L{i}") for i in range(3)]
    done = [0]
    refused = [0]
    counter_lock = sync.Lock()

    def body(i: int) -> None:
        rng = random.Random(100 + i)
        for _ in range(200):
            a, b = rng.sample(range(3), 2)  # any order: real cycles happen and are refused
            try:
                with locks[a], locks[b], counter_lock:
                    done[0] += 1
            except sync.DeadlockError:
                with counter_lock:
                    refused[0] += 1

    assert run(12, body) == []
    assert done[0] + refused[0] == 12 * 200
    assert not any(lock.locked() for lock in locks)


def test_rlock_condition_semaphore_channel_together() -> None:
    cond = sync.Condition(sync.RLock())
    sem = sync.BoundedSemaphore(3)
    ch = sync.Channel[int](4)
    items: list[int] = []
    inside = [0]
    peak = [0]

    def body(i: int) -> None:
        if i < 8:
            for k in range(100):
                with sem:
                    with cond:
                        inside[0] += 1
                        peak[0] = max(peak[0], inside[0])
                        inside[0] -= 1
                        cond.notify_all()
                    ch.send(i * 1000 + k, timeout=10)
        else:
            items.extend(ch.recv(timeout=10) for _ in range(200))

    assert run(12, body) == []
    assert sorted(items) == sorted(i * 1000 + k for i in range(8) for k in range(100))
    assert peak[0] == 1
    assert sem.statistics().value == 3
