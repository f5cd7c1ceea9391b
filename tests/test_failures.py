"""When things go wrong: task timeouts, worker crashes, retries, cooperative cancellation."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import gc
import itertools
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

import plait
from conftest import child_pids, has_exited
from plait import _rate

ATTEMPTS: dict[object, int] = {}  # per process: each worker process has its own
ATTEMPTS_LOCK = threading.Lock()


def flaky(key: object, failures: int = 2) -> str:
    """Fails ``failures`` times for each key, then succeeds (counted in this process)."""
    with ATTEMPTS_LOCK:
        ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
        attempt = ATTEMPTS[key]
    if attempt <= failures:
        raise ConnectionError(f"attempt {attempt} for {key}")
    return f"{key} ok on attempt {attempt}"


def sleep_if_told(x: float) -> float:
    time.sleep(x)
    return x


def first_time_only(marker: str, action: str) -> str:
    """Misbehaves (hangs or dies) the first time it sees ``marker``; fine afterwards."""
    path = Path(marker)
    if not path.exists():
        path.write_text("seen")
        if action == "hang":
            time.sleep(60)
        else:
            os._exit(9)
    return "fine"


def exit_with(code: int) -> int:
    if code:
        os._exit(code)
    return 0


def kill_myself(x: int) -> int:
    if x == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def close_socket_then_exit(code: int) -> None:
    for fd in os.listdir("/proc/self/fd"):  # the worker's end of its socket, its only one
        with contextlib.suppress(FileNotFoundError):  # the descriptor that lists the directory
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                os.close(int(fd))  # the parent sees EOF now
    time.sleep(0.005)  # still exiting, by itself
    os._exit(code)


class StrRaises(Exception):
    def __str__(self) -> str:
        raise RuntimeError("this exception cannot be printed")


class NothingWorks(Exception):
    def __str__(self) -> str:
        raise RuntimeError("this exception cannot be printed")

    def __repr__(self) -> str:
        raise RuntimeError("nor shown")

    def __reduce__(self) -> str | tuple[object, ...]:
        raise RuntimeError("nor pickled")


class TupleNotes(Exception):
    pass


def raise_odd(kind: str) -> str:
    if kind == "tuple notes":  # (add_note refuses a __notes__ that is not a list)
        error = TupleNotes("noted already")
        error.__notes__ = ("its own context",)  # type: ignore[assignment]
        raise error
    if kind == "str":
        raise StrRaises("unprintable")
    if kind == "nothing":
        raise NothingWorks("hopeless")
    return kind


PARENT = os.getpid()


def refuse_in_the_parent(value: int) -> int:
    if os.getpid() == PARENT:
        raise PermissionError("this value is only rebuilt in worker processes")
    return value


class OnlyInWorkers:
    def __reduce__(self) -> tuple[object, ...]:
        return (refuse_in_the_parent, (7,))


def result_the_parent_cannot_rebuild(x: int, module_dir: str) -> object:
    """Item 1 returns an instance of a class from a module only the worker can import;
    item 2 one whose __reduce__ names a callable that fails in the parent."""
    if x == 1:
        sys.path.insert(0, module_dir)
        import plait_worker_only  # type: ignore[import-not-found]

        return plait_worker_only.Point(1, 2)
    if x == 2:
        return OnlyInWorkers()
    return x


def die_every_97(x: int) -> int:
    if x % 97 == 96:
        os._exit(3)
    return x


def wait_for(fifo: str) -> int:
    with open(fifo, "rb") as f:
        f.read()
    return os.getpid()


def answer_then_die(fifo: str) -> int:
    """Returns 42 once told to through ``fifo``; its worker exits right after sending it."""
    from plait._backends.process import _frames

    wait_for(fifo)
    send = _frames.send_frame

    def send_then_exit(*args: object) -> None:
        send(*args)  # type: ignore[arg-type]
        os._exit(3)

    _frames.send_frame = send_then_exit  # type: ignore[assignment]
    return 42


# -- task timeouts ------------------------------------------------------------------------


def test_process_item_past_its_timeout_is_killed_and_the_rest_delivered() -> None:
    started = time.monotonic()
    results = list(
        plait.map(
            sleep_if_told,
            [0.0, 60.0, 0.0, 0.0],
            backend="process",
            workers=2,
            task_timeout=0.5,
            errors="return",
        )
    )
    assert results[0] == 0.0
    assert results[2:] == [0.0, 0.0]
    assert isinstance(results[1], plait.TaskTimeout)
    assert isinstance(results[1], TimeoutError)
    assert "killed and replaced" in str(results[1])
    assert time.monotonic() - started < 10  # nowhere near the 60 s the item wanted


def test_process_pool_stays_usable_after_a_timeout() -> None:
    with plait.Pool("process", workers=1, task_timeout=0.3) as pool:
        hung = pool.submit(sleep_if_told, 60.0)
        with pytest.raises(plait.TaskTimeout):
            hung.result(timeout=30)
        assert pool.submit(sleep_if_told, 0.0).result(timeout=30) == 0.0


def test_thread_item_past_its_timeout_is_abandoned_and_told_to_stop() -> None:
    stopped = threading.Event()

    def polite(x: int) -> int:
        if x == 0:
            while not plait.cancelled():  # a cooperative long task
                time.sleep(0.005)
            stopped.set()
        return x

    with pytest.warns(RuntimeWarning, match="abandoned"):
        results = list(plait.map(polite, range(3), workers=1, task_timeout=0.2, errors="return"))
    assert isinstance(results[0], plait.TaskTimeout)
    assert results[1:] == [1, 2]  # the replacement thread kept the pool's capacity
    assert stopped.wait(10)  # the abandoned task saw plait.cancelled() and ended


def test_chunksize_and_task_timeout_do_not_mix() -> None:
    with pytest.raises(ValueError, match="chunksize=5 cannot be combined with task_timeout"):
        plait.map(sleep_if_told, [0.0], chunksize=5, task_timeout=1)


# -- worker crashes -----------------------------------------------------------------------


def test_worker_exit_fails_only_its_item() -> None:
    results = list(
        plait.map(exit_with, [0, 7, 0, 0], backend="process", chunksize=1, errors="return")
    )
    assert results[0] == 0
    assert results[2:] == [0, 0]
    assert isinstance(results[1], plait.WorkerCrashed)
    assert results[1].exitcode == 7
    assert "exited with code 7" in str(results[1])


def test_worker_killed_by_a_signal_is_named() -> None:
    results = list(
        plait.map(kill_myself, [0, 1, 2], backend="process", chunksize=1, errors="return")
    )
    assert results[0] == 0
    assert results[2] == 2
    assert isinstance(results[1], plait.WorkerCrashed)
    assert "SIGKILL" in str(results[1])


def test_a_result_sent_just_before_its_worker_exits_is_delivered(tmp_path: Path) -> None:
    # The dispatcher is held (in a done-callback) until the worker has sent its result and
    # exited, so it reads the result and the end of the socket in one go.
    go, go_x = str(tmp_path / "go"), str(tmp_path / "go-x")
    os.mkfifo(go)
    os.mkfifo(go_x)
    problems: list[BaseException] = []

    def hold_the_dispatcher(done: Future[int]) -> None:
        try:
            (dying,) = child_pids() - {done.result()}
            with open(go, "wb") as f:  # the other worker returns 42 and exits
                f.write(b"!")
            deadline = time.monotonic() + 30
            while not has_exited(dying):
                assert time.monotonic() < deadline, "the worker did not exit"
                time.sleep(0.001)
        except BaseException as exc:
            problems.append(exc)

    with plait.Pool("process", workers=2) as pool:
        answer = pool.submit(answer_then_die, go)  # the first worker takes it
        other = pool.submit(wait_for, go_x)  # the second worker takes this one
        other.add_done_callback(hold_the_dispatcher)
        with open(go_x, "wb") as f:
            f.write(b"!")
        assert answer.result(timeout=30) == 42
        assert not problems
        assert pool.submit(abs, -1).result(timeout=30) == 1


def fork_a_helper_then_exit(pidfile: str) -> None:
    """Start a process that inherits the worker's socket and outlives the worker."""
    helper = os.fork()
    if helper == 0:
        time.sleep(60)  # (the test kills it; this bounds it if the test cannot)
        os._exit(0)
    Path(pidfile).write_text(str(helper))
    os._exit(3)


@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
def test_a_crash_is_noticed_while_a_process_the_task_forked_lives_on(
    tmp_path: Path, start_method: str
) -> None:
    """The helper holds the worker's end of its socket, so no EOF comes: the item used to stay
    pending, and its worker's place taken, for as long as the helper lived."""
    pidfile = tmp_path / "helper"
    with plait.Pool("process", plait.Workers(1, start_method=start_method)) as pool:
        try:
            with pytest.raises(plait.WorkerCrashed, match="exited with code 3"):
                pool.submit(fork_a_helper_then_exit, str(pidfile)).result(timeout=20)
            assert pool.submit(abs, -5).result(timeout=20) == 5  # its place is taken again
        finally:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                os.kill(int(pidfile.read_text()), signal.SIGKILL)


def test_healthy_items_next_to_crashes_are_never_reported_crashed() -> None:
    results = list(
        plait.map(die_every_97, range(500), backend="process", chunksize=1, errors="return")
    )
    for x, result in enumerate(results):
        if x % 97 == 96:
            assert isinstance(result, plait.WorkerCrashed), (x, result)
        else:
            assert result == x, (x, result)


@pytest.fixture
def cpu_load() -> Iterator[None]:
    """Every core busy with a spinning process while the test runs."""
    spin = [sys.executable, "-c", "while True: pass"]
    hogs = [subprocess.Popen(spin) for _ in range(os.cpu_count() or 2)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait()


@pytest.mark.usefixtures("cpu_load")
def test_a_crash_is_reported_with_its_own_exit_code_under_cpu_load() -> None:
    results = list(
        plait.map(exit_with, [3] * 6, backend="process", workers=2, chunksize=1, errors="return")
    )
    for result in results:
        assert isinstance(result, plait.WorkerCrashed)
        assert result.exitcode == 3
        assert "exited with code 3" in str(result)


def test_a_worker_exiting_by_itself_is_not_reported_as_killed_by_us() -> None:
    with plait.Pool("process", workers=1) as pool:
        for code in (5, 6, 7):
            with pytest.raises(plait.WorkerCrashed, match=f"exited with code {code}") as info:
                pool.submit(close_socket_then_exit, code).result(timeout=30)
            assert info.value.exitcode == code


def test_an_exception_that_cannot_be_printed_or_pickled_fails_only_its_item(backend: str) -> None:
    with plait.Pool(backend, workers=1) as pool:
        worker = pool.submit(os.getpid).result(timeout=30)
        kinds = ["a", "str", "nothing", "b"]
        results = list(pool.map(raise_odd, kinds, chunksize=4, errors="return"))
        assert pool.submit(os.getpid).result(timeout=30) == worker  # the worker lived on
    assert results[0] == "a"
    assert results[3] == "b"
    assert isinstance(results[1], StrRaises)  # the user's own exception, as ever
    if backend == "thread":
        assert isinstance(results[2], NothingWorks)
        return
    assert "raise_odd" in str(results[1].__cause__)  # with the worker's traceback
    assert isinstance(results[2], plait.RemoteError)
    assert results[2].type_name == "test_failures.NothingWorks"
    assert results[2].message == "<str() of this NothingWorks failed>"
    assert "raise NothingWorks" in results[2].traceback


def test_a_result_the_parent_cannot_rebuild_fails_alone(tmp_path: Path) -> None:
    module = "class Point:\n    def __init__(self, x, y):\n        pass\n"
    (tmp_path / "plait_worker_only.py").write_text(module)
    with plait.Pool("process", workers=1) as pool:
        worker = pool.submit(os.getpid).result(timeout=30)
        results = list(
            pool.map(
                result_the_parent_cannot_rebuild,
                range(5),
                [str(tmp_path)] * 5,
                chunksize=5,  # one batch: the other items of the batch are delivered
                errors="return",
            )
        )
        assert results[0] == 0
        assert results[3:] == [3, 4]
        missing, refused = results[1], results[2]
        assert isinstance(missing, plait.RemoteError)
        assert "result could not be rebuilt in the parent process" in str(missing)
        assert "No module named 'plait_worker_only'" in str(missing)
        assert isinstance(missing.__cause__, ModuleNotFoundError)
        assert isinstance(refused, plait.RemoteError)
        assert "only rebuilt in worker processes" in str(refused)
        assert isinstance(refused.__cause__, PermissionError)
        assert any("raised by item 2" in note for note in refused.__notes__)
        assert pool.submit(abs, -3).result(timeout=30) == 3  # the pool goes on,
        assert pool.submit(os.getpid).result(timeout=30) == worker  # on the same worker
        with pytest.raises(plait.RemoteError, match="could not be rebuilt"):
            pool.submit(result_the_parent_cannot_rebuild, 2, "").result(timeout=30)
    assert "plait_worker_only" not in sys.modules


class OwnBaseException(BaseException):
    pass


class RaisesAsItPickles:
    """Its ``__reduce__`` (the user's code) raises ``raises``, for the values in ``refused``;
    it is also a function of such values."""

    def __init__(self, value: int, raises: type[BaseException], refused: range) -> None:
        self.value, self.raises, self.refused = value, raises, refused

    def __reduce__(self) -> Any:
        if self.value in self.refused:
            raise self.raises("no pickling for me")
        return (RaisesAsItPickles, (self.value, self.raises, self.refused))

    def __call__(self, item: RaisesAsItPickles) -> int:
        return item.value


def value_of(item: RaisesAsItPickles) -> int:
    return item.value


def taken_until_it_raises(results: Iterator[Any]) -> list[Any]:
    """The results, then the exception that ended them (SystemExit and KeyboardInterrupt
    from an item are never values: they end the map in its place)."""
    taken: list[Any] = []
    try:
        taken.extend(results)
    except BaseException as exc:  # (TimeoutError: the map waited, until its deadline)
        taken.append(exc)
    return taken


BASE_EXCEPTIONS = [SystemExit, KeyboardInterrupt, OwnBaseException]


@pytest.mark.parametrize("raises", BASE_EXCEPTIONS)
def test_an_item_whose_pickling_raises_any_base_exception_fails_alone(
    raises: type[BaseException],
) -> None:
    """Only an Exception was caught: anything else ended the dispatcher's thread (silently,
    for SystemExit), with the batch it was sending, and the map waited for good (here, for
    its deadline)."""
    items = [RaisesAsItPickles(i, raises, range(3, 4)) for i in range(6)]
    with plait.Pool("process", workers=1) as pool:
        results = pool.map(value_of, items, chunksize=6, errors="return", timeout=30)
        taken = taken_until_it_raises(results)
        assert pool.submit(abs, -3).result(timeout=30) == 3  # the dispatcher lives on
    assert taken[:3] == [0, 1, 2], taken
    assert isinstance(taken[3], raises), taken
    assert "plait: this item could not be pickled to send it to a worker" in taken[3].__notes__
    if raises is OwnBaseException:  # (a value, with errors="return": the map goes on)
        assert taken[4:] == [4, 5], taken
    else:
        assert len(taken) == 4, taken


@pytest.mark.parametrize("raises", BASE_EXCEPTIONS)
def test_a_function_whose_pickling_raises_any_base_exception_fails_every_item(
    raises: type[BaseException],
) -> None:
    fn = RaisesAsItPickles(0, raises, range(1))
    items = [RaisesAsItPickles(i, raises, range(0)) for i in range(1, 4)]
    with plait.Pool("process", workers=1) as pool:
        taken = taken_until_it_raises(pool.map(fn, items, errors="return", timeout=30))
        assert pool.submit(abs, -3).result(timeout=30) == 3
    assert taken, taken
    assert all(isinstance(error, raises) for error in taken), taken
    assert len(taken) == (3 if raises is OwnBaseException else 1), taken
    notes = taken[0].__notes__
    assert "plait: the function could not be pickled for a worker process" in notes
    assert any(note.startswith("plait: item 0 was not run: ") for note in notes), notes


class LoadsInWorkersOnly:
    def __init__(self, value: int) -> None:
        self.value = value

    def __reduce__(self) -> tuple[object, ...]:
        return (loaded_in_workers_only, (self.value, os.getpid()))


def loaded_in_workers_only(value: int, parent: int) -> LoadsInWorkersOnly:
    if os.getpid() == parent:
        raise SystemExit("this item is only loaded in worker processes")
    return LoadsInWorkersOnly(value)


def exit_on_two(item: LoadsInWorkersOnly) -> int:
    if item.value == 2:
        os._exit(3)
    return item.value


def test_a_crashed_batch_whose_items_will_not_load_here_fails_whole() -> None:
    """A batch whose worker died runs again item by item, each loaded here from the pickle
    it was sent as: loading runs the items' own code. What that raised ended the
    dispatcher's thread, and the map waited for good; now the batch fails whole, with
    WorkerCrashed, as a batch that cannot be split, and the map goes on."""
    items = [LoadsInWorkersOnly(i) for i in range(8)]
    with plait.Pool("process", workers=1) as pool:
        results = pool.map(exit_on_two, items, chunksize=4, errors="return", timeout=30)
        taken = taken_until_it_raises(results)
        assert pool.submit(abs, -3).result(timeout=30) == 3
    assert all(isinstance(error, plait.WorkerCrashed) for error in taken[:4]), taken
    assert taken[4:] == [4, 5, 6, 7], taken
    # (The items are named in their notes as they are shown: these cannot be, here.)
    assert "plait: raised by item 1: <it could not be shown: SystemExit>" in taken[1].__notes__


def exit_the_program(future: Future[int]) -> None:
    raise SystemExit("from a done-callback")


def test_a_done_callback_that_raises_any_base_exception_leaves_the_pool_working(
    backend: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """A future's done-callbacks run in the dispatcher's thread (processes), or the worker's
    (threads): one that raised SystemExit ended it (silently, a thread's), and on processes
    every later submit raised PoolClosed. It is printed, as one that raises an Exception is
    (concurrent.futures logs those)."""
    with plait.Pool(backend, workers=1) as pool:
        call = pool.submit(abs, -1)
        call.add_done_callback(exit_the_program)
        assert call.result(timeout=30) == 1
        assert pool.submit(abs, -2).result(timeout=30) == 2
    assert "SystemExit: from a done-callback" in capfd.readouterr().err


# -- retries ------------------------------------------------------------------------------


def test_retries_give_failing_items_more_attempts(backend: str) -> None:
    keys = [f"{backend}-retry-{i}" for i in range(6)]
    results = list(plait.map(flaky, keys, backend=backend, retries=2))
    assert [r.split()[0] for r in results] == keys
    assert all(r.endswith("attempt 3") for r in results)


def test_retries_run_out_and_the_last_error_is_raised(backend: str) -> None:
    key = f"{backend}-runs-out"
    with pytest.raises(ConnectionError, match="attempt 2") as info:
        list(plait.map(flaky, [key], backend=backend, retries=1))
    assert any("failed 2 times" in note for note in info.value.__notes__)


def test_retry_only_the_named_exceptions() -> None:
    policy = plait.Retry(retries=3, on=(OSError,))
    key = "only-named"

    def value_error_then_ok(k: str) -> str:
        flaky(k)  # ConnectionError is an OSError: retried
        raise ValueError("never retried")

    with pytest.raises(ValueError, match="never retried"):
        list(plait.map(value_error_then_ok, [key], retries=policy))
    assert ATTEMPTS[key] == 3


def test_retry_with_backoff_waits_between_attempts() -> None:
    policy = plait.Retry(retries=2, backoff=0.05, jitter=0)
    started = time.monotonic()
    assert list(plait.map(flaky, ["backoff"], retries=policy)) == ["backoff ok on attempt 3"]
    assert time.monotonic() - started >= 0.05 + 0.1  # waited 0.05 s, then 0.1 s


def test_a_timed_out_item_is_retried_when_asked(tmp_path: Path) -> None:
    policy = plait.Retry(retries=1, timeouts=True)
    marker = str(tmp_path / "hung-once")
    results = plait.map(
        first_time_only, [marker], ["hang"], backend="process", task_timeout=0.5, retries=policy
    )
    assert list(results) == ["fine"]


def test_a_crashed_item_is_retried_when_asked(tmp_path: Path) -> None:
    policy = plait.Retry(retries=1, crashes=True)
    marker = str(tmp_path / "crashed-once")
    results = plait.map(first_time_only, [marker], ["die"], backend="process", retries=policy)
    assert list(results) == ["fine"]


def test_timeouts_and_crashes_are_not_retried_by_default(tmp_path: Path) -> None:
    marker = str(tmp_path / "crash-no-retry")
    with pytest.raises(plait.WorkerCrashed):
        list(plait.map(first_time_only, [marker], ["die"], backend="process", retries=3))


def fails_every_time(how: str) -> None:
    if how == "hang":
        plait.sleep(60)  # (ends once its thread is given up on: its token is cancelled)
    os._exit(4)


@pytest.mark.parametrize(
    ("how", "backend", "error"),
    [
        ("hang", "thread", plait.TaskTimeout),
        ("hang", "process", plait.TaskTimeout),
        ("die", "process", plait.WorkerCrashed),
    ],
)
def test_a_timeout_or_crash_past_its_retries_says_how_many_attempts_failed(
    how: str, backend: str, error: type[BaseException]
) -> None:
    """As an error past its retries does (a timeout's or a crash's said nothing of them)."""
    policy = plait.Retry(retries=2, backoff=0, timeouts=True, crashes=True)
    with pytest.warns(RuntimeWarning) if backend == "thread" else contextlib.nullcontext():
        (outcome,) = plait.map(
            fails_every_time,
            [how],
            backend=backend,
            task_timeout=0.3,
            retries=policy,
            errors="return",
        )
    assert isinstance(outcome, error)
    assert "plait: the item failed 3 times; this is the last error" in outcome.__notes__


def test_bad_retry_arguments() -> None:
    with pytest.raises(ValueError, match="retries must be >= 0"):
        plait.map(flaky, [1], retries=-1)
    with pytest.raises(TypeError, match="on must be an exception class or a tuple of them"):
        plait.Retry(on="ValueError")  # type: ignore[arg-type]
    assert plait.Retry(on=OSError).on == (OSError,)


# -- cooperative cancellation -------------------------------------------------------------


def test_checkpoint_raises_cancelled_which_except_exception_cannot_swallow() -> None:
    from plait._cancel import CancelToken, set_current_token

    token = CancelToken()
    set_current_token(token)
    try:
        plait.checkpoint()  # not cancelled yet: nothing happens
        token.cancel()
        assert plait.cancelled()

        def swallow_exceptions() -> None:
            try:
                plait.checkpoint()
            except Exception:  # pragma: no cover - the point: this does not catch it
                pytest.fail("Cancelled was caught by except Exception")

        with pytest.raises(plait.Cancelled):
            swallow_exceptions()
    finally:
        set_current_token(None)
    assert not plait.cancelled()


def test_abandoning_a_map_tells_running_thread_tasks_to_stop() -> None:
    running = threading.Event()
    saw_cancel = threading.Event()

    def long_task(x: int) -> int:
        if x == 1:
            running.set()
            while not plait.cancelled():
                time.sleep(0.005)
            saw_cancel.set()
        return x

    with plait.Pool(workers=2) as pool:
        results = pool.map(long_task, range(2), chunksize=1)
        assert next(results) == 0
        assert running.wait(10)
        results.close()
        assert saw_cancel.wait(10)


@pytest.fixture
def patient_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Thread terminations that would wait 30 s for a running task, and an Event that lets
    that task go (set at the end of the test, whatever happened)."""
    from plait._backends import _thread

    monkeypatch.setattr(_thread, "TERMINATE_GRACE", 30.0)
    release = threading.Event()
    yield release
    release.set()


def held_until(release: threading.Event) -> Any:
    def held(x: int) -> int:
        if x == 1:
            assert release.wait(60)  # (it does not look at plait.cancelled())
        return x

    return held


@pytest.mark.parametrize("backend", ["thread", "auto"])
def test_a_maps_deadline_is_kept_while_a_thread_item_runs_on(
    backend: str, patient_threads: threading.Event
) -> None:
    """(Its TimeoutError came after the grace a stopped map gives running thread tasks, half a
    second, patched to 30 s here: the deadline is the consumer's, it goes on at once.)"""
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        list(plait.map(held_until(patient_threads), range(3), backend=backend, timeout=0.2))
    assert time.monotonic() - started < 10


def test_an_aborted_map_does_not_wait_for_a_running_thread_item(
    patient_threads: threading.Event,
) -> None:
    results = plait.map(held_until(patient_threads), range(3), backend="thread", chunksize=1)
    assert next(results) == 0
    aborted = threading.Timer(0.05, results.abort)  # (next() waits for item 1 meanwhile)
    aborted.start()
    started = time.monotonic()
    with pytest.raises(plait.Cancelled):
        next(results)
    results.close()
    aborted.join()
    assert time.monotonic() - started < 10


def test_a_cancelled_amap_does_not_wait_for_a_running_thread_item(
    patient_threads: threading.Event,
) -> None:
    import asyncio

    async def main() -> None:
        await asyncio.wait_for(plait.amap(held_until(patient_threads), range(3)), 0.2)

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        asyncio.run(main())
    assert time.monotonic() - started < 10


def test_break_leaves_no_item_of_the_map_running_that_stops_when_told() -> None:
    """Stopped by its consumer, a map gives its running thread tasks a moment to see
    plait.cancelled() before it returns: code after the loop does not race them."""
    running, ended = threading.Event(), threading.Event()

    def polite(x: int) -> int:
        if x == 1:
            running.set()
            while not plait.cancelled():
                time.sleep(0.001)
            ended.set()
        return x

    for value in plait.map(polite, range(3), backend="thread", chunksize=1):
        assert value == 0
        assert running.wait(10)
        break
    assert ended.is_set()


# -- rate limits ----------------------------------------------------------------------------


def test_rate_limits_calls_per_second_across_threads() -> None:
    started = time.monotonic()
    assert list(plait.map(abs, range(-20, 0), rate=100, workers=4)) == list(range(20, 0, -1))
    assert time.monotonic() - started >= 19 / 100  # a bucket of 1: 19 waits of 10 ms at least


def test_rate_limits_async_functions_without_blocking_the_loop() -> None:
    import asyncio

    async def echo(x: int) -> int:
        await asyncio.sleep(0)
        return x

    started = time.monotonic()
    assert list(plait.map(echo, range(11), rate=50)) == list(range(11))
    assert time.monotonic() - started >= 10 / 50


def test_rate_on_processes_is_one_bucket_their_workers_share() -> None:
    started = time.monotonic()
    results = list(plait.map(abs, range(-11, 0), backend="process", workers=2, rate=20))
    assert results == list(range(11, 0, -1))
    assert time.monotonic() - started >= 10 / 20  # a bucket of 1: 10 waits of 50 ms at least


def most_in_a_second(times: list[float]) -> int:
    """The most of these moments that fall within one second (its ends included)."""
    times = sorted(times)
    return max(bisect.bisect_right(times, t + 1.0) - i for i, t in enumerate(times))


def stamp_then_die_once(log: str, item: int, die: bool = True) -> int:
    """Notes when it was called, then (if told to) kills its worker process the first time it
    sees ``item`` (its second run returns)."""
    with open(log, "a") as out:
        out.write(f"{time.monotonic()!r}\n")
    marker = Path(f"{log}.{item}")
    if die and not marker.exists():
        marker.write_text("seen")
        os.kill(os.getpid(), signal.SIGKILL)
    return item


def called_at(x: int) -> float:
    return time.monotonic()


def test_rate_holds_across_process_workers_that_are_recycled() -> None:
    """Each new worker took a full bucket of its own: 12 calls at rate=4 ran in 0.1 s."""
    recycled = plait.Workers(2, max_tasks=1)
    times = list(plait.map(called_at, range(12), backend="process", workers=recycled, rate=4))
    assert most_in_a_second(times) <= 4 + 1  # (slots 1/4 s apart: a second holds 4, or 5)
    assert max(times) - min(times) >= 11 / 4 - 0.05


def test_rate_holds_across_process_workers_that_are_killed(tmp_path: Path) -> None:
    """Each item kills its worker once: every replacement took a full bucket of its own."""
    log = str(tmp_path / "calls")
    again = plait.Retry(retries=1, crashes=True)
    results = plait.map(
        stamp_then_die_once, [log] * 6, range(6), backend="process", rate=4, retries=again
    )
    assert list(results) == list(range(6))
    times = [float(line) for line in Path(log).read_text().split()]
    assert len(times) == 12
    assert most_in_a_second(times) <= 4 + 1


def test_a_rate_bucket_is_removed_with_its_map() -> None:
    assert list(plait.map(abs, range(-3, 0), backend="process", workers=2, rate=1000)) == [3, 2, 1]
    gc.collect()
    mine = f"plait-rate-{os.getpid()}-"
    assert not [name for name in os.listdir(_rate.folder()) if name.startswith(mine)]


def test_the_rate_buckets_of_programs_that_were_killed_are_removed() -> None:
    """A program killed with SIGKILL cannot remove its buckets' files: the next bucket made on
    the machine removes them (a file per map, in /dev/shm, left for good)."""
    ended = [sys.executable, "-c", "import os; print(os.getpid())"]
    # (a pid no process has: it ended, and was reaped)
    gone = int(subprocess.run(ended, capture_output=True, text=True, check=True).stdout)
    folder = Path(_rate.folder())
    orphan = folder / f"plait-rate-{gone}-left"
    ours = folder / f"plait-rate-{os.getpid()}-ours"
    orphan.write_bytes(b"\0" * 8)
    ours.write_bytes(b"\0" * 8)
    try:
        results = plait.map(abs, range(-3, 0), backend="process", workers=1, rate=1000)
        assert list(results) == [3, 2, 1]
        assert not orphan.exists()
        assert ours.exists()  # (a live program's file is its own)
    finally:
        orphan.unlink(missing_ok=True)
        ours.unlink(missing_ok=True)


def test_a_worker_that_cannot_reach_the_rate_bucket_takes_its_share_starting_empty() -> None:
    """A cluster's worker on another machine (here: the bucket's file is gone)."""
    limited = _rate.rate_limited(abs, 100, "dask", workers=20)
    shipped = pickle.dumps(limited)
    del limited
    gc.collect()  # (its file is removed)
    worker_side = pickle.loads(shipped)
    started = time.monotonic()
    assert worker_side(-1) == 1
    assert time.monotonic() - started >= 1 / 5  # its share: 100/s over 20 threads, no burst


def quick_or_slow(x: int) -> int:
    if x < 0:
        time.sleep(2)  # (past its time limit, once its slot came)
    return x


async def quick_or_slow_async(x: int) -> int:
    if x < 0:
        await asyncio.sleep(2)
    return x


@pytest.mark.parametrize("backend", ["thread", "process", "async"])
def test_the_wait_for_a_rate_slot_is_no_part_of_an_items_time_limit(backend: str) -> None:
    """12 items at 20 a second, each allowed 0.2 s: the last waits 0.55 s for its slot.
    That wait counted as the item running: 13 of 16 such items failed with TaskTimeout,
    some of them never called. The clock starts once the slot came, and then it runs."""
    fn = quick_or_slow_async if backend == "async" else quick_or_slow
    kind = None if backend == "async" else backend
    results = list(
        plait.map(fn, [*range(12), -1], backend=kind or "auto", workers=8, rate=20,
                  task_timeout=0.2, errors="return")
    )  # fmt: skip
    assert results[:12] == list(range(12)), [type(r).__name__ for r in results]
    assert isinstance(results[12], plait.TaskTimeout)


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rate must be > 0"):
        plait.map(abs, [1], rate=0)


def test_a_maps_deadline_is_kept_for_a_consumer_slower_than_its_workers() -> None:
    """(The deadline was only looked at while the consumer waited for a result.)"""
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        for _ in plait.map(abs, itertools.count(), backend="thread", workers=2, timeout=0.3):
            time.sleep(0.0001)  # (the consumer's own work: slower than the workers')
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("backend", ["thread", "auto", "pool"])
def test_results_ready_by_the_deadline_are_handed_out_after_it(backend: str) -> None:
    """As an Executor's map: only a result not ready in time raises TimeoutError. A consumer
    slower than the deadline lost results computed long before it, and one whose last loop
    body outlasted it got a TimeoutError from a map that had finished."""
    computed = threading.Semaphore(0)

    def counted(x: int) -> int:
        computed.release()
        return x

    with plait.Pool("thread", workers=4) as pool:
        results = (
            pool.map(counted, range(4), timeout=0.5, chunksize=1)
            if backend == "pool"
            else plait.map(counted, range(4), backend=backend, workers=4, timeout=0.5, chunksize=1)
        )
        assert next(results) == 0
        for _ in range(4):
            assert computed.acquire(timeout=10)
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:  # (past the deadline, whatever the clock's grain)
            time.sleep(0.05)
        assert list(results) == [1, 2, 3]


def test_a_deadline_and_an_abort_are_kept_while_an_input_trickles_in() -> None:
    """An input that gives an item every so often always has a result ready for the
    consumer, which never waits: neither was acted on until the input ended (after 1 s at
    the least, here: the deadline and the abort come at 0.3 s)."""

    def trickle() -> Iterator[int]:
        for item in range(50):
            time.sleep(0.02)  # (the input's own pace: a socket, tail -f)
            yield item

    def read(results: Any) -> str:
        try:
            for _ in results:
                pass
        except TimeoutError:
            return "timeout"
        except plait.Cancelled:
            return "cancelled"
        return "ended"

    assert read(plait.map(abs, trickle(), backend="thread", timeout=0.3)) == "timeout"
    aborted = plait.map(abs, trickle(), backend="thread")
    timer = threading.Timer(0.3, aborted.abort)
    timer.start()
    assert read(aborted) == "cancelled"
    timer.join()


@pytest.mark.parametrize("backend", ["thread", "process", "auto"])
def test_abort_before_the_first_result_runs_nothing(backend: str) -> None:
    ran: list[int] = []
    results = plait.map(ran.append, range(100), backend=backend)
    results.abort()
    with pytest.raises(plait.Cancelled):
        next(results)
    results.close()
    assert ran == []


def test_an_exception_whose_notes_are_a_tuple_comes_back_itself(backend: str) -> None:
    """plait notes which item raised; an exception that takes no note (its ``__notes__`` a
    tuple) came back as plait's own TypeError 'Cannot add note', and the map ended there."""
    results = list(
        plait.map(raise_odd, ["a", "tuple notes", "b"], backend=backend, errors="return")
    )
    assert [results[0], results[2]] == ["a", "b"]
    assert type(results[1]) is TupleNotes
    assert str(results[1]) == "noted already"
    with pytest.raises(TupleNotes, match="noted already"):
        list(plait.map(raise_odd, ["a", "tuple notes", "b"], backend=backend))
