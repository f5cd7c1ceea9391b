"""No result lost, shifted or shared: odd exceptions, inputs that fail, errors per item."""

from __future__ import annotations

import asyncio
import ctypes
import functools
import gc
import importlib
import itertools
import os
import re
import signal
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from pathlib import Path
from typing import Any

import pytest

import plait
from conftest import on, wait_for_file


def stop_at_three(x: int) -> int:
    if x == 3:
        raise StopIteration("three")
    return x


async def stop_at_three_async(x: int) -> int:
    if x == 3:
        raise StopIteration("three")
    return x


class EndOfPages(StopIteration):
    """A StopIteration of the user's own."""


def stop_at_three_with(stop: Callable[[], StopIteration]) -> Callable[[int], int]:
    def stop_at_three(x: int) -> int:
        if x == 3:
            raise stop()
        return x

    return stop_at_three


def assert_stop_iteration_error(
    error: object, *, remote: bool = False, stop: type[StopIteration] = StopIteration
) -> None:
    """A RuntimeError caused by the task's StopIteration itself, as a generator makes it;
    ``remote``: from a process, whose traceback is the StopIteration's own cause, as it is any
    other exception's from a process."""
    assert isinstance(error, RuntimeError)
    assert f"raised {stop.__name__}" in str(error)
    cause = error.__cause__
    assert type(cause) is stop
    assert cause.args == ("three",)
    if remote:
        worker_traceback = cause.__cause__
        assert isinstance(worker_traceback, plait.RemoteTraceback)
        assert f"{stop.__name__}: three" in worker_traceback.tb
        assert "in stop_at_three" in worker_traceback.tb


# -- 1. a task raising StopIteration -------------------------------------------------------


@pytest.mark.parametrize("chunksize", [None, 1, 5, 10])
@pytest.mark.parametrize("ordered", [True, False])
def test_stop_iteration_fails_its_item_and_keeps_the_rest_in_place(
    backend: str, chunksize: int | None, ordered: bool
) -> None:
    results = list(
        plait.map(
            stop_at_three,
            range(10),
            backend=backend,
            chunksize=chunksize,
            errors="return",
            ordered=ordered,
        )
    )
    [error] = [r for r in results if isinstance(r, BaseException)]
    if ordered:
        assert results.index(error) == 3
    assert sorted(r for r in results if isinstance(r, int)) == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert_stop_iteration_error(error, remote=backend == "process")


@pytest.mark.parametrize("ordered", [True, False])
def test_stop_iteration_raises_runtime_error_naming_the_item(backend: str, ordered: bool) -> None:
    with pytest.raises(RuntimeError, match="raised StopIteration") as info:
        list(plait.map(stop_at_three, range(10), backend=backend, chunksize=5, ordered=ordered))
    assert any("raised by item 3" in note for note in info.value.__notes__)
    assert_stop_iteration_error(info.value, remote=backend == "process")


def test_stop_iteration_in_several_iterables(backend: str) -> None:
    def pick(a: int, b: int) -> int:
        return stop_at_three(a) + b

    results = list(plait.map(pick, range(6), range(6), backend=backend, errors="return"))
    assert results[:3] == [0, 2, 4]
    assert results[4:] == [8, 10]
    assert_stop_iteration_error(results[3], remote=backend == "process")


def test_stop_iteration_from_submit_is_a_runtime_error(backend: str) -> None:
    with plait.Pool(backend, 1) as pool:
        future: Future[int] = pool.submit(stop_at_three, 3)
        with pytest.raises(RuntimeError) as info:
            future.result(timeout=30)
        assert_stop_iteration_error(info.value, remote=backend == "process")
        assert pool.submit(stop_at_three, 4).result(timeout=30) == 4


def test_stop_iteration_in_a_task_group(backend: str) -> None:
    with pytest.raises(BaseExceptionGroup) as info, plait.TaskGroup(backend=backend) as tg:
        tg.submit(stop_at_three, 3)
    [error] = info.value.exceptions
    assert_stop_iteration_error(error, remote=backend == "process")


def test_stop_iteration_is_retried_as_a_runtime_error() -> None:
    calls: list[int] = []

    def once(x: int) -> int:
        calls.append(x)
        if len(calls) == 1:
            raise StopIteration
        return x

    retry = plait.Retry(retries=1, on=RuntimeError)
    assert list(plait.map(once, [7], retries=retry)) == [7]


def test_a_stop_iteration_that_every_retry_raises_is_the_last_errors_cause(backend: str) -> None:
    retry = plait.Retry(retries=2, on=RuntimeError)
    [error] = plait.map(stop_at_three, [3], backend=backend, retries=retry, errors="return")
    assert_stop_iteration_error(error, remote=backend == "process")
    assert isinstance(error, RuntimeError)
    assert any("failed 3 times" in note for note in error.__notes__)


def test_a_stop_iteration_of_the_users_own_class_is_the_cause(backend: str) -> None:
    stop = stop_at_three_with(lambda: EndOfPages("three"))
    results = list(plait.map(stop, range(5), backend=backend, errors="return"))
    assert [results[i] for i in (0, 1, 2, 4)] == [0, 1, 2, 4]
    assert_stop_iteration_error(results[3], remote=backend == "process", stop=EndOfPages)


def test_a_stop_iteration_that_cannot_travel_is_a_remote_error_as_its_cause() -> None:
    """Its arguments do not pickle: the cause is what any exception that cannot be rebuilt in
    the parent becomes, a RemoteError with its type, message and the worker's traceback; the
    RuntimeError still takes the item's place."""
    stop = stop_at_three_with(lambda: StopIteration(threading.Lock()))
    results = list(plait.map(stop, range(5), backend="process", errors="return"))
    assert [results[i] for i in (0, 1, 2, 4)] == [0, 1, 2, 4]
    error = results[3]
    assert isinstance(error, RuntimeError)
    cause = error.__cause__
    assert isinstance(cause, plait.RemoteError)
    assert cause.type_name == "builtins.StopIteration"
    assert isinstance(cause.__cause__, plait.RemoteTraceback)
    assert "in stop_at_three" in cause.__cause__.tb


def test_stop_iteration_in_async_functions() -> None:
    async def main() -> list[object]:
        return await plait.amap(stop_at_three_async, range(6), errors="return")

    results = asyncio.run(main())
    assert results[:3] == [0, 1, 2]
    assert results[4:] == [4, 5]
    assert_stop_iteration_error(results[3])

    mapped = list(plait.map(stop_at_three_async, range(6), errors="return"))
    assert mapped[:3] == [0, 1, 2]
    assert mapped[4:] == [4, 5]
    assert_stop_iteration_error(mapped[3])


# -- 13. one failure shared by many items --------------------------------------------------


def test_a_failing_initializer_gives_each_item_its_own_exception(backend: str) -> None:
    def broken() -> None:
        raise OSError("no database")

    workers = plait.Workers(2, initializer=broken)
    results = list(plait.map(abs, range(2000), workers=workers, backend=backend, errors="return"))
    assert all(isinstance(r, OSError) for r in results)
    assert len({id(r) for r in results}) == len(results)
    for index, error in enumerate(results):
        assert isinstance(error, OSError)
        item_notes = [n for n in error.__notes__ if n.startswith("plait: item")]
        assert item_notes == [f"plait: item {index} was not run: {index}"]


def test_copies_of_a_shared_error_keep_type_args_and_cause() -> None:
    from plait._task import failed

    class Odd(Exception):
        def __init__(self, a: int, b: int) -> None:
            super().__init__(a, b)

    cause = KeyError("k")
    error = Odd(1, 2)
    error.__cause__ = cause
    error.add_note("first")
    outcome = failed(3, error)
    copies = list(outcome.errors.values())
    assert len({id(c) for c in [error, *copies]}) == 4
    for copy in copies:
        assert type(copy) is Odd
        assert copy.args == (1, 2)
        assert copy.__cause__ is cause
        assert copy.__notes__ == ["first"]
    copies[1].add_note("second")
    assert error.__notes__ == ["first"]


# -- 4. an input that raises ---------------------------------------------------------------


def items_then_error(count: int) -> Iterator[int]:
    yield from range(count)
    raise ValueError("broke")


@pytest.mark.parametrize("chunksize", [None, 1, 7, 100])
def test_a_failing_input_delivers_every_item_read_before_it(
    backend: str, chunksize: int | None
) -> None:
    results: list[int] = []
    with pytest.raises(ValueError, match="broke") as info:
        results.extend(plait.map(abs, items_then_error(150), backend=backend, chunksize=chunksize))
    assert results == list(range(150))
    assert "plait: raised by the input after 150 items" in info.value.__notes__


class InputHalt(BaseException):
    """Neither an Exception nor Ctrl-C nor SystemExit."""


def items_then_halt(count: int) -> Iterator[int]:
    yield from range(count)
    raise InputHalt("stopped")


def test_an_input_that_raises_a_base_exception_delivers_every_item_read_before_it(
    backend: str,
) -> None:
    """Only an Exception was the input's error, raised in its turn: another BaseException
    left the map at once, and the items read before it (3,000 here) were lost."""
    results: list[int] = []
    with pytest.raises(InputHalt) as info:
        results.extend(plait.map(abs, items_then_halt(3000), backend=backend))
    assert results == list(range(3000))
    assert "plait: raised by the input after 3000 items" in info.value.__notes__


def test_a_failing_input_unordered_and_errors_return(backend: str) -> None:
    results: list[object] = []
    with pytest.raises(ValueError, match="broke"):
        results.extend(
            plait.map(abs, items_then_error(150), backend=backend, ordered=False, errors="return")
        )
    assert sorted(results) == list(range(150))  # type: ignore[type-var]


def test_a_failing_input_to_several_iterables(backend: str) -> None:
    results: list[int] = []
    with pytest.raises(ValueError, match="broke"):
        results.extend(plait.map(pow, items_then_error(50), range(100), backend=backend))
    assert results == [pow(i, i) for i in range(50)]


def test_a_failing_input_in_amap() -> None:
    async def double(x: int) -> int:
        return 2 * x

    async def main(fn: object) -> list[int]:
        seen: list[int] = []
        with pytest.raises(ValueError, match="broke"):
            async for value in plait.amap(fn, items_then_error(40)):  # type: ignore[arg-type]
                seen.append(value)  # noqa: PERF401 (the values before the error are the point)
        return seen

    assert asyncio.run(main(double)) == [2 * i for i in range(40)]
    assert asyncio.run(main(abs)) == list(range(40))


def test_an_input_that_raises_stop_iteration_ends_like_builtin_map(backend: str) -> None:
    # A generator cannot leak StopIteration (PEP 479), but a hand-written iterator ends with it:
    # that is the end of the input, as for the builtin map.
    class Five:
        def __init__(self) -> None:
            self.n = 0

        def __iter__(self) -> Five:
            return self

        def __next__(self) -> int:
            self.n += 1
            if self.n > 5:
                raise StopIteration
            return self.n

    assert list(plait.map(abs, Five(), backend=backend)) == [1, 2, 3, 4, 5]


def test_input_error_is_raised_once_and_the_map_then_ends(backend: str) -> None:
    results = plait.map(abs, items_then_error(3), backend=backend)
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="broke"):
        next(results)
    with pytest.raises(StopIteration):
        next(results)


def test_generators_of_different_lengths_get_plaits_message(backend: str) -> None:
    short = (i for i in range(3))
    long = (i for i in range(5))
    results: list[int] = []
    with pytest.raises(ValueError, match=r"plait.map: the iterables have different lengths"):
        results.extend(plait.map(pow, long, short, backend=backend, chunksize=1))
    assert results == [pow(i, i) for i in range(3)]


def test_a_value_error_from_an_input_is_not_taken_for_a_length_mismatch(backend: str) -> None:
    with pytest.raises(ValueError, match="broke") as info:
        list(plait.map(pow, items_then_error(3), range(3), backend=backend))
    assert "different lengths" not in str(info.value)


# -- 11. a shutdown while a map is being read ----------------------------------------------


def block_until_released(directory: str, x: int) -> int:
    """Item 0 says it started, then waits (cancellably) until the test releases it."""
    if x == 0:
        Path(directory, "started").touch()
        deadline = time.monotonic() + 30
        while not Path(directory, "release").exists() and time.monotonic() < deadline:
            plait.sleep(0.01)
    return x


@pytest.mark.parametrize("how", ["cancel_futures", "terminate"])
def test_a_shutdown_from_another_thread_ends_the_reader_of_a_map(
    backend: str, how: str, tmp_path: Path
) -> None:
    pool = plait.Pool(backend, 1)
    outcome: list[object] = []
    task = partial(block_until_released, str(tmp_path))

    def read() -> None:
        try:
            outcome.extend(pool.map(task, [0, 1, 2], chunksize=1))
        except BaseException as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        wait_for_file(tmp_path / "started")
        if how == "terminate":
            pool.terminate()
        else:
            pool.shutdown(wait=False, cancel_futures=True)
            (tmp_path / "release").touch()
        reader.join(10)
        assert not reader.is_alive(), "the reader still waits"
    finally:
        (tmp_path / "release").touch()
        pool.terminate()
        reader.join(30)
    if how == "terminate":
        assert len(outcome) == 1
        assert isinstance(outcome[0], plait.Cancelled)
    else:
        assert outcome[0] == 0
        assert isinstance(outcome[-1], plait.Cancelled)


def test_a_map_on_a_pool_shut_down_meanwhile_delivers_what_ran_then_says_so(
    backend: str,
) -> None:
    pool = plait.Pool(backend, 1)
    results = pool.map(abs, range(100), chunksize=1)
    assert next(results) == 0
    pool.shutdown(wait=True)
    values: list[int] = []
    with pytest.raises(plait.PoolClosed) as info:
        values.extend(results)
    assert values == list(range(1, len(values) + 1))
    assert any("the map stopped after" in note for note in info.value.__notes__)


# -- 14. cancelling plait.amap over a plain function -----------------------------------------


def test_amap_of_a_plain_function_is_cancelled_promptly(backend: str, tmp_path: Path) -> None:
    task = partial(block_until_released, str(tmp_path))

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(plait.amap(task, [0, 0, 0, 0], workers=4, backend=backend), 0.5)

    started = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - started < 5
    assert not (tmp_path / "release").exists()  # the work was stopped, not waited for


def test_an_amap_task_cancelled_by_its_task_group_stops_the_work(tmp_path: Path) -> None:
    task = partial(block_until_released, str(tmp_path))

    async def consume() -> None:
        async for _ in plait.amap(task, [0, 1, 2]):
            pass

    async def main() -> None:
        with pytest.raises(ExceptionGroup):
            async with asyncio.TaskGroup() as group:
                group.create_task(consume())
                wait = asyncio.to_thread(wait_for_file, tmp_path / "started")
                await wait
                raise ExceptionGroup("stop", [ValueError("the sibling failed")])

    started = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - started < 10


# -- 2. a worker crash costs only the item that caused it ----------------------------------


def crash_every_97th(how: str, x: int) -> int:
    if x % 97 == 50:
        if how == "exit":
            os._exit(3)
        elif how == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        else:
            ctypes.string_at(0)  # a segfault
    return x * x


@pytest.mark.parametrize("how", ["exit", "sigkill", "segfault"])
def test_a_crash_in_a_batch_fails_only_the_item_that_crashed(how: str) -> None:
    items = 1000
    results = list(
        plait.map(partial(crash_every_97th, how), range(items), backend="process", errors="return")
    )
    assert len(results) == items
    crashed = [x for x, r in enumerate(results) if isinstance(r, plait.WorkerCrashed)]
    assert crashed == [x for x in range(items) if x % 97 == 50]
    for x, result in enumerate(results):
        if x not in crashed:
            assert result == x * x


def test_a_crashed_batch_does_not_teach_the_sizer_that_batches_are_free() -> None:
    from plait._backends import Backend
    from plait._backends._base import Unprobed
    from plait._chunking import ChunkSizer
    from plait._events import MapObserver
    from plait._scheduler import MapRun
    from plait._task import Job, Kind, Task, failed

    class CrashingBackend(Unprobed):
        name = "process"
        workers = 1
        batch_limit: int | None = None

        def submit(self, task: Task) -> None:
            task.finish(task, failed(len(task.items), plait.WorkerCrashed("boom")))

        def release(self, job: Job) -> None:
            pass

        def plan(self, job: Job) -> None:
            return None

        def shutdown(self, *, wait: bool, cancel_pending: bool) -> None:
            pass

        def terminate(self, *, grace: bool = True) -> None:
            pass

        def started(self) -> bool:
            return True

        def blocking(self) -> AbstractContextManager[object]:
            return nullcontext()

    backend: Backend = CrashingBackend()
    sizer = ChunkSizer("process", 1)
    run = MapRun(
        backend,
        Job(abs, Kind.MAP),
        iter(range(100)),
        sizer=sizer,
        ordered=True,
        errors="return",
        deadline=None,
        observer=MapObserver(),
        on_close=lambda complete, hurried: None,
        total=None,
    )
    while run.next_batch() is not None:
        pass
    run.close()
    assert sizer.next_size() == 1


# -- 8. a timed item's clock starts when the worker is ready to run it ---------------------

SLOW_MODULE = """
import time
time.sleep({seconds})


def square(x):
    return x * x
"""


def test_task_timeout_does_not_count_the_worker_loading_the_function(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "slow_to_import_a.py").write_text(SLOW_MODULE.format(seconds=1.0))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("slow_to_import_a")
    try:
        results = list(
            plait.map(module.square, range(6), backend="process", workers=2, task_timeout=0.5)
        )
    finally:
        sys.modules.pop("slow_to_import_a", None)
    assert results == [x * x for x in range(6)]


def test_a_load_that_hangs_is_still_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from plait._backends.process import _handle

    (tmp_path / "slow_to_import_b.py").write_text(SLOW_MODULE.format(seconds=0))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("slow_to_import_b")
    # The workers will import a version of it that hangs.
    (tmp_path / "slow_to_import_b.py").write_text(SLOW_MODULE.format(seconds=60))
    for cached in (tmp_path / "__pycache__").glob("slow_to_import_b*"):
        cached.unlink()
    monkeypatch.setattr(_handle, "LOAD_SECONDS", 1.0)
    try:
        with pytest.raises(plait.TaskTimeout, match="loading the function"):
            list(plait.map(module.square, [1], backend="process", workers=1, task_timeout=0.1))
    finally:
        sys.modules.pop("slow_to_import_b", None)


# -- 15. a task that waits on its own pool -------------------------------------------------


def test_tasks_that_map_on_their_own_full_pool_do_not_deadlock() -> None:
    with plait.Pool("thread", 2) as pool:

        def inner_map(n: int) -> int:
            return sum(pool.map(abs, range(-n, 0), chunksize=1))

        futures = [pool.submit(inner_map, 50) for _ in range(4)]
        assert [f.result(timeout=30) for f in futures] == [sum(range(1, 51))] * 4


def test_tasks_that_wait_on_futures_of_their_own_pool_do_not_deadlock() -> None:
    with plait.Pool("thread", 1) as pool:

        def fib(n: int) -> int:
            if n < 2:
                return n
            a, b = pool.submit(fib, n - 1), pool.submit(fib, n - 2)
            return a.result(timeout=30) + b.result(timeout=30)

        assert pool.submit(fib, 10).result(timeout=30) == 55
        assert pool.workers == 1


def test_the_extra_threads_of_a_nested_wait_go_away_after_it() -> None:
    with plait.Pool("thread", 2) as pool:

        def nested(_: int) -> int:
            return len(list(pool.map(abs, range(20), chunksize=1)))

        assert list(pool.map(nested, range(4), chunksize=1)) == [20] * 4
        # Back to at most `workers` threads that take work, once the waits are over.
        for _ in range(3):
            assert sum(pool.map(abs, range(100))) == sum(range(100))
        live = [t for t in threading.enumerate() if t.name.startswith("plait-thread-")]
        assert len(live) <= 4


# -- 12. pools dropped without shutdown() --------------------------------------------------


def test_a_dropped_thread_pool_warns_and_its_threads_end() -> None:
    pool = plait.Pool("thread", 2)
    assert pool.submit(abs, -1).result(timeout=30) == 1
    threads = [t for t in threading.enumerate() if t.name.startswith("plait-thread-")]
    assert threads
    with pytest.warns(ResourceWarning, match=r"unclosed <plait.Pool backend='thread'"):
        del pool  # collected at once: nothing else refers to it
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive()


def test_a_dropped_process_pool_warns_and_its_workers_end() -> None:
    from conftest import child_pids

    before = child_pids()
    pool = plait.Pool("process", 2)
    assert pool.submit(abs, -1).result(timeout=30) == 1
    dispatcher = pool._backend._thread  # type: ignore[attr-defined]
    with pytest.warns(ResourceWarning, match=r"unclosed <plait.Pool backend='process'"):
        del pool
    assert dispatcher.join(30)  # (its thread waits for the next pool's dispatcher)
    # Its idle workers were kept warm for the next pool, as any ended pool's: once those are
    # let go, nothing of it is left.
    from plait._backends.process import _warm

    _warm.discard_all()
    assert child_pids() <= before


def test_an_unused_pool_dropped_says_nothing(backend: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pool = plait.Pool(backend)
        del pool
        gc.collect()


def test_a_pool_closed_then_dropped_says_nothing(backend: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pool = plait.Pool(backend)
        pool.submit(abs, 1).result(timeout=30)
        pool.shutdown()
        del pool
        gc.collect()


# -- 17. smaller ones ----------------------------------------------------------------------


def test_map_on_a_shut_down_pool_raises_pool_closed(backend: str) -> None:
    pool = plait.Pool(backend)
    pool.shutdown()
    with pytest.raises(plait.PoolClosed, match="shut down"):
        pool.map(abs, [1])


def test_task_timeout_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="task_timeout must be > 0 seconds, got 0"):
        plait.map(abs, [1], task_timeout=0)
    with pytest.raises(ValueError, match="task_timeout must be > 0"):
        plait.Pool(task_timeout=0)


def test_run_given_arguments_suggests_a_fix_that_works() -> None:
    with pytest.raises(TypeError, match=r"functools\.partial") as info:
        plait.run(print, "hello")  # type: ignore[call-overload]
    match = re.search(r"e\.g\. (plait\.run\(.*?\)\))", str(info.value))
    assert match is not None
    printed: list[object] = []
    namespace = {"plait": plait, "functools": functools, "print": printed.append}
    eval(match.group(1), namespace)  # the suggestion, run as given
    assert printed == ["hello"]


def test_an_unpicklable_function_fails_items_without_blaming_them() -> None:
    lock = threading.Lock()

    def uses_lock(x: int) -> int:
        with lock:
            return x

    results = list(plait.map(uses_lock, range(3), backend="process", errors="return"))
    for index, error in enumerate(results):
        assert isinstance(error, TypeError)
        assert "plait: the function could not be pickled for a worker process" in error.__notes__
        assert f"plait: item {index} was not run: {index}" in error.__notes__
        assert not any("raised by item" in note for note in error.__notes__)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("unsendable", ["function", "items"])
def test_tasks_that_fail_before_they_are_sent_do_not_strand_the_rest(unsendable: str) -> None:
    """A task that fails as it is sent (its function or all its items will not pickle) leaves
    its worker free: the worker takes the next one at once. (It used to wait for an event that
    never came, once every worker had been handed such a task in one pass.)"""
    lock = threading.Lock()

    def uses_lock(x: object) -> object:
        with lock:
            return x

    fn, items = (uses_lock, range(6)) if unsendable == "function" else (str, [lock] * 6)
    results = list(plait.map(fn, items, backend="process", workers=1, chunksize=1, errors="return"))
    assert len(results) == 6
    assert all(isinstance(result, TypeError) for result in results)


def test_a_thread_timeout_warning_points_at_the_users_function() -> None:
    def overruns(x: int) -> int:
        plait.sleep(30)
        return x

    with pytest.warns(RuntimeWarning, match="task_timeout") as record:
        results = list(plait.map(overruns, [1], task_timeout=0.05, errors="return"))
    assert isinstance(results[0], plait.TaskTimeout)
    [warning] = record.list
    assert warning.filename == __file__
    assert warning.lineno == overruns.__code__.co_firstlineno


def test_warnings_are_printed_above_a_progress_bar(capsys: pytest.CaptureFixture[str]) -> None:
    def warns(x: int) -> int:
        if x == 5:
            warnings.warn("item five is odd", UserWarning, stacklevel=1)
        return x

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        shown_before = warnings.showwarning
        assert list(plait.map(warns, range(10), progress=True, chunksize=1)) == list(range(10))
        assert warnings.showwarning is shown_before  # restored once the bar is gone
    err = capsys.readouterr().err
    warning_lines = [line for line in err.splitlines() if "UserWarning: item five is odd" in line]
    assert len(warning_lines) == 1
    assert "%|" not in warning_lines[0]  # on a line of its own, not mixed into the bar


def test_a_progress_bar_is_closed_however_the_map_ends(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from plait import _progress

    results = plait.map(abs, range(1000), progress=True, chunksize=10)
    for value in results:
        if value == 500:
            break
    results.close()
    assert _progress._bars_open == 0
    with pytest.raises(ZeroDivisionError):
        for value in plait.map(abs, range(1000), progress=True, chunksize=10):
            if value == 500:
                raise ZeroDivisionError
    assert _progress._bars_open == 0
    capsys.readouterr()


def test_a_task_waiting_on_a_sibling_in_a_bounded_task_group_does_not_deadlock() -> None:
    with plait.TaskGroup(workers=1) as tg:
        later: list[plait.TaskHandle[int]] = []
        ready = threading.Event()

        def first() -> int:
            ready.wait(30)
            return 1 + later[0].result(timeout=30)

        handle = tg.submit(first)  # takes the group's only worker, then waits for `second`
        later.append(tg.submit(int, "2"))
        ready.set()
    assert handle.result() == 3


# -- memory: a map's batches are freed as soon as they are yielded -------------------------


def test_a_long_map_leaves_no_reference_cycles_behind(backend: str) -> None:
    """Batches that referred to themselves (a callback bound to its own task) were freed only
    by the cycle collector, and held their items until then: an endless map's memory grew."""
    gc.collect()
    gc.disable()
    try:
        with plait.Pool(backend, 2) as pool:
            results = pool.map(abs, itertools.count(), chunksize=10)
            assert sum(itertools.islice(results, 20_000)) == sum(range(20_000))
            results.close()
        cycles = gc.collect()
    finally:
        gc.enable()
    assert cycles < 200, f"{cycles} objects in reference cycles after 2,000 batches"


def test_a_thread_abandoned_after_a_timeout_says_so_in_its_name() -> None:
    names: list[str] = []

    def overruns(x: int) -> int:
        try:
            plait.sleep(30)
        finally:
            names.append(threading.current_thread().name)
        return x

    with pytest.warns(RuntimeWarning, match="task_timeout"):
        results = list(plait.map(overruns, [1], task_timeout=0.05, errors="return"))
    assert isinstance(results[0], plait.TaskTimeout)
    for thread in threading.enumerate():  # told to stop: it ends at once (the test sees it end)
        if thread.name.startswith("plait-thread-"):
            thread.join(10)
    assert names == ["plait-thread-0 (abandoned)"]


class Dummy:
    """A result or argument whose freeing a weak reference can watch."""


def make_dummy(_: int) -> Dummy:
    return Dummy()


def take_dummy(dummy: Dummy) -> int:
    return 1


def rebuilt_in() -> str:
    return threading.current_thread().name


class SaysWhereItWasRebuilt:
    """A result that becomes, in the parent, the name of the thread that unpickled it."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return rebuilt_in, ()


def says_where(x: int) -> Any:
    return SaysWhereItWasRebuilt() if x % 2 else x


def test_process_results_are_rebuilt_by_the_consumer_not_the_dispatcher() -> None:
    """A batch's values travel packed as far as the consumer: the thread that feeds the
    workers never spends its time (or memory) on them."""
    results: list[Any] = []
    thread = threading.Thread(
        target=lambda: results.extend(
            plait.map(says_where, range(6), backend="process", workers=2, chunksize=2)
        ),
        name="the-consumer",
    )
    thread.start()
    thread.join(60)
    assert results == [0, "the-consumer", 2, "the-consumer", 4, "the-consumer"]


@pytest.mark.parametrize("errors", ["raise", "return"])
def test_a_map_keeps_no_reference_to_a_result_it_handed_out(any_backend: str, errors: Any) -> None:
    """concurrent.futures' promise (CPython's test_free_reference): once the consumer drops a
    result, it is freed, even though the rest of its batch is still to come."""
    fn = on(any_backend, make_dummy)
    with plait.map(fn, range(20), backend=any_backend, chunksize=10, errors=errors) as results:
        for result in results:
            ref = weakref.ref(result)
            del result
            gc.collect()
            assert ref() is None


def test_a_submitted_calls_arguments_are_freed_once_it_is_done(backend: str) -> None:
    """CPython's test_no_stale_references: the pool keeps nothing of a finished call."""
    with plait.Pool(backend, 2) as pool:
        dummy = Dummy()
        ref = weakref.ref(dummy)
        assert pool.submit(take_dummy, dummy).result(timeout=30) == 1
        del dummy
        gc.collect()
        assert ref() is None


def test_two_threads_reading_one_map_at_once_both_fail_loudly() -> None:
    """A second thread that asked for results while the first waited for the next batch made
    the results end for both, silently: each loop ended as if it had them all (1 of 200,000
    delivered). Now both raise, and the map ends."""
    started, go = threading.Event(), threading.Event()

    def first_waits(x: int) -> int:
        if x == 0:
            started.set()
            assert go.wait(10)
        return x

    results = iter(plait.map(first_waits, range(1000), backend="thread"))
    outcome: dict[str, object] = {}

    def read() -> None:
        try:
            outcome["first"] = list(results)
        except BaseException as exc:
            outcome["first"] = exc

    reader = threading.Thread(target=read)
    reader.start()
    assert started.wait(10)  # (the reader waits for the first batch now)
    with pytest.raises(RuntimeError, match="two threads read a map's results at once"):
        next(results)
    go.set()
    reader.join(10)
    assert isinstance(outcome["first"], RuntimeError), outcome
    assert "two threads" in str(outcome["first"])
