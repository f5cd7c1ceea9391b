"""Pool is a concurrent.futures.Executor: the standard contract, on every backend."""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import threading
import time
import weakref
from collections.abc import Iterator
from concurrent.futures import CancelledError, Executor, Future, as_completed, wait
from dataclasses import dataclass
from typing import Any

import pytest

import plait


def double(x: int) -> int:
    return x * 2


def fail(message: str) -> None:
    raise RuntimeError(message)


def test_pool_is_an_executor() -> None:
    with plait.Pool() as pool:
        assert isinstance(pool, Executor)


def test_submit_returns_a_standard_future(backend: str) -> None:
    with plait.Pool(backend, workers=2) as pool:
        future = pool.submit(pow, 2, 10)
        assert isinstance(future, Future)
        assert future.result(timeout=30) == 1024


def test_submit_passes_keyword_arguments(backend: str) -> None:
    with plait.Pool(backend, workers=1) as pool:
        assert pool.submit(int, "ff", base=16).result(timeout=30) == 255


def test_submit_exception_is_the_users_own(backend: str) -> None:
    with plait.Pool(backend, workers=1) as pool:
        future = pool.submit(fail, "boom")
        with pytest.raises(RuntimeError, match="boom"):
            future.result(timeout=30)
        assert isinstance(future.exception(), RuntimeError)


def test_many_submits_complete(backend: str) -> None:
    with plait.Pool(backend, workers=2) as pool:
        futures = [pool.submit(double, i) for i in range(200)]
        assert sorted(f.result(timeout=30) for f in as_completed(futures)) == [
            i * 2 for i in range(200)
        ]


def identity(x: object) -> object:
    return x


def test_a_finished_call_keeps_nothing_of_itself() -> None:
    """Not its function, nor what the function holds: a pool that lives long and takes calls
    by the thousand keeps none of them once their futures are dropped."""

    class Held:
        pass

    with plait.Pool() as pool:  # (auto, the default)
        held = Held()
        kept = weakref.ref(held)
        future = pool.submit(functools.partial(identity, held))  # (held by the function)
        assert future.result(timeout=30) is held
        del held, future
        gc.collect()
        assert kept() is None


class Scaler:
    """A callable whose state may change between two calls: it travels by value."""

    def __init__(self, factor: int) -> None:
        self.factor = factor

    def scaled(self, x: int, gate: str | None = None) -> int:
        """``x`` scaled; with ``gate``, once it says it started (``gate`` + ".x") and then
        the file ``gate`` exists (the call runs in another process)."""
        if gate is not None:
            open(f"{gate}.{x}", "w").close()
            wait_for_file(gate)
        return x * self.factor

    __call__ = scaled


class Unhashable:
    def __hash__(self) -> int:
        raise ValueError("no hash here")

    def __call__(self, x: int) -> int:
        return x + 1


def test_each_call_ships_its_callable_as_it_was_when_submitted(tmp_path: Any) -> None:
    """On processes, a call of a callable that travels by value (an object, a bound method)
    shared the shipped copy of an earlier call of it still in flight: submitted after its
    state changed, it ran the old state. As concurrent.futures, each call has its own now."""
    gate = str(tmp_path / "go")
    scaler = Scaler(1)
    with plait.Pool("process", workers=2) as pool:
        first = pool.submit(scaler, 10, gate)  # (in flight until the gate opens)
        first_method = pool.submit(scaler.scaled, 1, gate)
        wait_for_file(f"{gate}.10")  # (both run: the state they were sent with is theirs)
        wait_for_file(f"{gate}.1")
        scaler.factor = 100
        second = pool.submit(scaler, 10)
        second_method = pool.submit(scaler.scaled, 1)
        open(gate, "w").close()
        assert first.result(timeout=30) == 10
        assert first_method.result(timeout=30) == 1
        assert second.result(timeout=30) == 1000
        assert second_method.result(timeout=30) == 100
        # A callable whose hash raises is called as any other.
        assert pool.submit(Unhashable(), 1).result(timeout=30) == 2


def test_a_pool_used_only_through_its_map_is_shut_down_once_both_are_dropped(
    backend: str,
) -> None:
    """``list(plait.Pool().map(f, xs))``: the pool, never named, was collected before its lazy
    map started the workers, which then ran on with nobody to shut them down. Now the map
    keeps its pool until it ends; then the pool is collected, and shut down, as any pool
    dropped without shutdown() is (with a ResourceWarning)."""
    pool = plait.Pool(backend, workers=2)
    workers = pool._backend  # (to wait below for what the collection told to stop)
    results = pool.map(double, range(50))
    kept = weakref.ref(pool)
    del pool
    out = list(results)
    assert out == [x * 2 for x in range(50)]
    assert kept() is not None
    del results
    with pytest.warns(ResourceWarning, match="unclosed <plait.Pool"):
        gc.collect()  # (the map, and so the pool: a map's run and its generator hold each other)
    assert kept() is None
    workers.shutdown(wait=True, cancel_pending=False)  # (it was shut down: this waits for it)


def test_pool_runs_many_maps(backend: str) -> None:
    with plait.Pool(backend, workers=2) as pool:
        for n in (0, 1, 10, 1000):
            assert list(pool.map(double, range(n))) == [x * 2 for x in range(n)]
        assert list(pool.map(lambda a, b: a + b, [1, 2], [10, 20])) == [11, 22]


def test_map_timeout_is_a_deadline_for_the_whole_map() -> None:
    release = threading.Event()

    def wait_for_release(x: int) -> int:
        release.wait(30)
        return x

    with plait.Pool(workers=1) as pool:
        results = pool.map(wait_for_release, [1, 2], timeout=0.05)
        with pytest.raises(TimeoutError):
            next(results)
        release.set()


def test_shutdown_waits_for_pending_work(backend: str) -> None:
    pool = plait.Pool(backend, workers=1)
    futures = [pool.submit(double, i) for i in range(20)]
    pool.shutdown(wait=True)
    assert all(f.done() for f in futures)
    assert [f.result() for f in futures] == [i * 2 for i in range(20)]


def test_shutdown_cancel_futures_cancels_what_has_not_started() -> None:
    started = threading.Event()
    release = threading.Event()

    def block() -> None:
        started.set()
        release.wait(30)

    pool = plait.Pool(workers=1)
    running = pool.submit(block)
    queued = [pool.submit(double, i) for i in range(5)]
    assert started.wait(10)
    closer = threading.Thread(target=pool.shutdown, kwargs={"cancel_futures": True})
    closer.start()
    release.set()
    closer.join()
    assert running.result() is None
    assert all(f.cancelled() for f in queued)
    # (as_completed and wait see them done: cancel() alone woke only result())
    assert wait(queued, timeout=10).not_done == set()
    assert len(list(as_completed(queued, timeout=10))) == len(queued)
    with pytest.raises(CancelledError):
        queued[0].result()


async def double_soon(x: int) -> int:
    return x * 2


def async_blocker() -> tuple[threading.Event, threading.Event, Any]:
    started, release = threading.Event(), threading.Event()

    async def block() -> None:
        started.set()
        while not release.is_set():
            await asyncio.sleep(0.001)

    return started, release, block


@dataclass
class BusyAsyncPool:
    pool: plait.Pool
    running: Future[None]  # the one permit's coroutine, which waits for ``release``
    queued: list[Future[int]]  # calls waiting for the permit
    release: threading.Event


@pytest.fixture
def busy_async_pool() -> Iterator[BusyAsyncPool]:
    """A Pool("async") of one permit, taken by a coroutine that waits; five calls wait."""
    started, release, block = async_blocker()
    pool = plait.Pool("async", workers=1)
    try:
        running = pool.submit(block)
        queued = [pool.submit(double_soon, i) for i in range(5)]
        assert started.wait(10)
        yield BusyAsyncPool(pool, running, queued, release)
    finally:
        release.set()
        pool.shutdown()


def test_an_async_pool_drops_what_has_not_started_on_shutdown_cancel_futures(
    busy_async_pool: BusyAsyncPool,
) -> None:
    """(On Pool("async") every submitted coroutine ran: each began at once, waiting for a
    permit, and so could never be cancelled.)"""
    busy = busy_async_pool
    closer = threading.Thread(target=busy.pool.shutdown, kwargs={"cancel_futures": True})
    closer.start()
    assert wait(busy.queued, timeout=10).not_done == set()
    busy.release.set()
    closer.join(30)
    assert busy.running.result(timeout=10) is None
    assert all(f.cancelled() for f in busy.queued)


def test_an_async_pools_waiting_call_can_be_cancelled() -> None:
    started, release, block = async_blocker()
    with plait.Pool("async", workers=1) as pool:
        running = pool.submit(block)
        assert started.wait(10)
        queued = pool.submit(double_soon, 1)
        on_the_loop = threading.Event()  # (the loop took the call: it waits for a permit)
        pool._backend._loop.call_soon_threadsafe(on_the_loop.set)  # type: ignore[attr-defined]
        assert on_the_loop.wait(10)
        assert not running.cancel()  # (it runs)
        assert queued.cancel()
        release.set()
        assert running.result(timeout=10) is None
        with pytest.raises(CancelledError):
            queued.result(timeout=10)


@pytest.mark.parametrize("kind", ["thread", "auto"])
@pytest.mark.parametrize("how", ["shutdown", "terminate"])
def test_a_task_may_shut_its_own_pool_down(kind: str, how: str) -> None:
    """(It waited for its own thread to end: for good.)"""
    pool = plait.Pool(kind, workers=2)
    other = pool.submit(double, 21)

    def task() -> str:
        getattr(pool, how)()
        return "returned"

    try:
        assert pool.submit(task).result(timeout=30) == "returned"
        if how == "shutdown":
            assert other.result(timeout=30) == 42
    finally:
        pool.shutdown()


def test_a_call_running_when_its_pool_is_terminated_raises_cancelled_error() -> None:
    """The Executor contract: CancelledError, an Exception (it was plait.Cancelled, a
    BaseException, which code that handles futures with ``except Exception`` let through)."""
    started = threading.Event()

    def polite() -> None:
        started.set()
        while True:
            plait.sleep(0.01)  # (raises plait.Cancelled once the pool is terminated)

    pool = plait.Pool("thread", workers=1)
    call = pool.submit(polite)
    assert started.wait(10)
    pool.terminate()
    with pytest.raises(CancelledError) as caught:
        call.result(timeout=10)
    assert isinstance(caught.value.__cause__, plait.Cancelled)
    assert caught.value.__cause__.reason is plait.CancelReason.TERMINATED


def test_an_async_pool_terminated_drops_what_waits_and_says_terminated(
    busy_async_pool: BusyAsyncPool,
) -> None:
    """(What waited for a permit ran and was cancelled, and what ran said only CANCELLED.)"""
    busy = busy_async_pool
    busy.pool.terminate()
    with pytest.raises(CancelledError) as caught:
        busy.running.result(timeout=10)
    assert caught.value.__cause__.reason is plait.CancelReason.TERMINATED  # type: ignore[union-attr]
    assert all(f.cancelled() for f in busy.queued)


def test_an_async_map_closed_after_its_pool_shut_down_says_nothing() -> None:
    """(Its batches' tokens, cancelled by the close, reached for the loop the shutdown had
    closed: RuntimeError("Event loop is closed").)"""
    pool = plait.Pool("async")
    results: Any = pool.map(double_soon, range(3000))
    assert next(results) == 0
    pool.shutdown()
    results.close()


def test_shutdown_without_wait_still_finishes_the_work(backend: str) -> None:
    pool = plait.Pool(backend, workers=2)
    futures = [pool.submit(double, i) for i in range(10)]
    pool.shutdown(wait=False)
    done, _ = wait(futures, timeout=30)
    assert len(done) == 10
    pool.shutdown(wait=True)  # joins what is left, so nothing leaks


def test_submit_after_shutdown_is_refused(backend: str) -> None:
    pool = plait.Pool(backend)
    pool.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(double, 1)
    with pytest.raises(RuntimeError, match="shut down"):
        pool.map(double, [1])


def test_shutdown_twice_is_harmless(backend: str) -> None:
    pool = plait.Pool(backend)
    pool.submit(double, 1).result(timeout=30)
    pool.shutdown()
    pool.shutdown()


def test_a_cancelled_future_never_runs() -> None:
    started = threading.Event()
    release = threading.Event()
    ran: list[int] = []

    def block() -> None:
        started.set()
        release.wait(30)

    with plait.Pool(workers=1) as pool:
        pool.submit(block)
        assert started.wait(10)
        queued = pool.submit(ran.append, 1)
        assert queued.cancel()
        release.set()
    assert ran == []


def wait_for_file(path: str) -> str:
    deadline = time.monotonic() + 30
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.005)
    return path


def test_a_call_cancelled_while_it_waits_leaves_a_process_pool_working(tmp_path: Any) -> None:
    """(Its function's last call over, the owner released the job from inside the pool's
    start(), under the lock release() takes: the pool's dispatcher waited on itself.)"""
    release = str(tmp_path / "release")
    with plait.Pool("process", workers=1) as pool:
        running = pool.submit(wait_for_file, release)
        waiting = pool.submit(double, 2)  # (the only call of its function)
        assert waiting.cancel()
        open(release, "w").close()
        assert running.result(timeout=30) == release
        assert pool.submit(double, 3).result(timeout=30) == 6


def test_abandoned_pool_map_leaves_the_pool_usable(backend: str) -> None:
    with plait.Pool(backend, workers=2) as pool:
        for value in pool.map(double, range(10**9)):
            if value > 10:
                break
        assert pool.submit(double, 21).result(timeout=30) == 42


def test_worker_crash_fails_its_item_and_the_pool_goes_on() -> None:
    import os

    with plait.Pool("process", workers=1) as pool:
        crashed: Future[object] = pool.submit(os._exit, 3)
        with pytest.raises(plait.WorkerCrashed, match="exited with code 3"):
            crashed.result(timeout=30)
        assert pool.submit(double, 4).result(timeout=30) == 8


def test_repr_names_backend_and_workers() -> None:
    pool = plait.Pool("process", workers=3)
    assert repr(pool) == "<plait.Pool backend='process' workers=3 open>"
    pool.shutdown()
    assert "shut down" in repr(pool)


def test_time_is_spent_concurrently_on_threads() -> None:
    barrier = threading.Barrier(4, timeout=10)

    def meet(_: int) -> float:
        barrier.wait()  # only returns if all four run at once
        return time.monotonic()

    with plait.Pool(workers=4) as pool:
        assert len(list(pool.map(meet, range(4), chunksize=1))) == 4


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")  # Python 3.12+ on fork
def test_fork_start_method_when_asked() -> None:
    import os

    with plait.Pool("process", workers=plait.Workers(2, start_method="fork")) as pool:
        assert list(pool.map(lambda x: x * 3, range(50))) == [x * 3 for x in range(50)]
        assert pool.submit(os.getpid).result(timeout=30) != os.getpid()
        crashed: Future[object] = pool.submit(os._exit, 4)
        with pytest.raises(plait.WorkerCrashed, match="exited with code 4"):
            crashed.result(timeout=30)
        assert pool.submit(double, 5).result(timeout=30) == 10


def test_start_method_is_checked() -> None:
    with pytest.raises(ValueError, match="start_method must be 'forkserver'"):
        plait.Workers(start_method="forked")
    with pytest.raises(ValueError, match="applies to backend='process' only"):
        plait.Pool("thread", plait.Workers(start_method="fork"))
