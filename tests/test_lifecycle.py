"""Worker lifecycle: initializers, per-worker state, recycling."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import plait


def remember_worker(tag: str) -> None:
    state = plait.worker_state()
    state["tag"] = tag
    state["who"] = (os.getpid(), threading.get_ident())
    state["calls"] = 0


def who_am_i(_: int) -> tuple[str, tuple[int, int], int]:
    state = plait.worker_state()
    state["calls"] += 1
    return state["tag"], state["who"], state["calls"]


def broken_initializer() -> None:
    raise LookupError("no database today")


def end_in_setup(starts: str, how: str) -> None:
    """An initializer that ends its own worker process, and counts the workers it ended."""
    with open(starts, "a") as log:
        log.write("x")
    if how == "exit":
        os._exit(7)
    os.kill(os.getpid(), signal.SIGKILL)


def pid(_: int) -> int:
    return os.getpid()


def leave_a_thread_running(x: int) -> int:
    threading.Thread(target=time.sleep, args=(60,), name="left-behind").start()  # not a daemon
    return x


def test_initializer_runs_once_per_worker_and_tasks_reach_its_state(backend: str) -> None:
    workers = plait.Workers(2, initializer=remember_worker, initargs=("db",))
    results = list(plait.map(who_am_i, range(40), backend=backend, workers=workers, chunksize=1))
    assert {tag for tag, _, _ in results} == {"db"}
    seen = {who for _, who, _ in results}
    assert 1 <= len(seen) <= 2
    for who in seen:  # each worker counted its own calls, from one initializer run
        counts = sorted(calls for _, w, calls in results if w == who)
        assert counts == list(range(1, len(counts) + 1))


def test_a_failing_initializer_fails_the_tasks_with_its_error(backend: str) -> None:
    workers = plait.Workers(1, initializer=broken_initializer)
    with pytest.raises(LookupError, match="no database today") as info:
        list(plait.map(pid, range(3), backend=backend, workers=workers))
    assert any("initializer failed" in note for note in info.value.__notes__)


@pytest.mark.parametrize(
    ("start_method", "how", "said", "code"),
    [("forkserver", "exit", "exited with code 7", 7), ("spawn", "kill", "killed by SIGKILL", -9)],
)
def test_an_initializer_that_ends_its_worker_fails_the_tasks_and_nothing_hangs(
    tmp_path: Path, start_method: str, how: str, said: str, code: int
) -> None:
    """A worker that dies before it is ready holds no task: replacing it for ever failed
    nothing, started thousands of workers and hung the call and the shutdown."""
    starts = tmp_path / "starts"
    workers = plait.Workers(
        2, initializer=end_in_setup, initargs=(str(starts), how), start_method=start_method
    )
    pool = plait.Pool("process", workers)
    try:
        with pytest.raises(plait.WorkerCrashed, match=said) as info:
            pool.submit(pid, 0).result(timeout=20)
        assert "initializer test_lifecycle.end_in_setup" in str(info.value)
        assert info.value.exitcode == code
        with pytest.raises(plait.WorkerCrashed, match=said):  # later calls too, at once
            pool.submit(pid, 1).result(timeout=20)
        pool.shutdown()  # returns: nothing is left pending
    finally:
        pool.terminate()
    from plait._backends.process._handle import EARLY_DEATHS

    assert len(starts.read_text()) <= 2 + EARLY_DEATHS  # not a worker started per millisecond
    with pytest.raises(plait.WorkerCrashed, match=said):
        list(plait.map(pid, range(3), backend="process", workers=workers))


LOCK = threading.Lock()


@pytest.mark.parametrize(
    ("initializer", "initargs", "what"),
    [
        (remember_worker, (LOCK,), "initargs"),
        (lambda: LOCK.acquire(), (), "initializer"),  # (cloudpickle takes the lambda, not its lock)
    ],
)
def test_an_initializer_that_cannot_be_pickled_fails_each_task_with_the_users_error(
    capfd: pytest.CaptureFixture[str],
    initializer: Callable[..., object],
    initargs: tuple[object, ...],
    what: str,
) -> None:
    """It used to be taken for a crash of plait's dispatcher: PlaitError, a thread's traceback
    on stderr, and a pool closed behind the user's back."""
    workers = plait.Workers(2, initializer=initializer, initargs=initargs)
    with plait.Pool("process", workers) as pool:
        for x in range(2):  # the pool stays open, and each call says why it fails
            with pytest.raises(TypeError, match="cannot pickle") as info:
                pool.submit(pid, x).result(timeout=20)
            assert any(f"{what} could not be pickled" in n for n in info.value.__notes__)
    with pytest.raises(TypeError, match="cannot pickle"):
        list(plait.map(pid, range(3), backend="process", workers=workers))
    assert "Traceback" not in capfd.readouterr().err


class OwnBaseException(BaseException):
    pass


class RaisesAsItPickles:
    def __init__(self, raises: type[BaseException]) -> None:
        self.raises = raises

    def __reduce__(self) -> tuple[object, ...]:
        raise self.raises("no pickling for me")


@pytest.mark.parametrize("raises", [SystemExit, OwnBaseException])
def test_initargs_whose_pickling_raises_any_base_exception_fail_each_task_with_it(
    raises: type[BaseException],
) -> None:
    """A __reduce__ is the user's code: whatever it raises is the pickling error. (Only an
    Exception was: anything else ended the dispatcher's thread, and each call waited for
    good.)"""
    workers = plait.Workers(2, initializer=remember_worker, initargs=(RaisesAsItPickles(raises),))
    with plait.Pool("process", workers) as pool:
        for x in range(2):
            with pytest.raises(raises, match="no pickling for me") as info:
                pool.submit(pid, x).result(timeout=20)
            assert any("initargs could not be pickled" in n for n in info.value.__notes__)


def test_worker_state_outside_a_worker_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="only available inside a task"):
        plait.worker_state()


def test_process_workers_are_recycled_after_max_tasks() -> None:
    workers = plait.Workers(2, max_tasks=5)
    with plait.Pool("process", workers) as pool:
        pids = list(pool.map(pid, range(40)))
        assert len(set(pids)) >= 40 // 5
        for worker in set(pids):
            assert pids.count(worker) <= 5
        assert pool.submit(pid, 0).result(timeout=30) > 0  # the pool goes on


def test_recycling_is_for_processes_only() -> None:
    with pytest.raises(ValueError, match=r"Workers.max_tasks applies to backend='process' only"):
        plait.Pool("thread", plait.Workers(max_tasks=3))


def test_workers_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="count must be an int >= 1"):
        plait.Workers(0)
    with pytest.raises(TypeError, match="initializer must be callable"):
        plait.Workers(initializer="setup")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="initargs must be a tuple"):
        plait.Workers(initargs=[1])  # type: ignore[arg-type]


def test_a_replacement_worker_runs_the_initializer_too() -> None:
    workers = plait.Workers(1, initializer=remember_worker, initargs=("again",))
    with plait.Pool("process", workers) as pool:
        first = pool.submit(who_am_i, 0).result(timeout=30)
        with pytest.raises(plait.WorkerCrashed):
            pool.submit(os._exit, 1).result(timeout=30)
        second = pool.submit(who_am_i, 0).result(timeout=30)
    assert first[0] == second[0] == "again"
    assert first[1] != second[1]
    assert second[2] == 1  # a fresh worker, a fresh state


def test_a_thread_a_task_left_running_does_not_hold_its_worker() -> None:
    started = time.monotonic()
    with plait.Pool("process", workers=2) as pool:
        assert list(pool.map(leave_a_thread_running, range(4), chunksize=1)) == [0, 1, 2, 3]
    assert time.monotonic() - started < 10  # not the 60 s the threads sleep
    assert list(plait.map(leave_a_thread_running, range(4), backend="process")) == [0, 1, 2, 3]
    assert time.monotonic() - started < 20
