"""Warm workers: a pool that ends hands its idle workers on to the next one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import Future
from pathlib import Path

import pytest

import plait
from conftest import has_exited

pytestmark = pytest.mark.timeout(60)


def remember(x: int) -> tuple[int, object]:
    state = plait.worker_state()
    seen = state.get("mark")
    state["mark"] = x
    return os.getpid(), seen


def double(x: int) -> int:
    return 2 * x


def connect() -> None:
    plait.worker_state()["db"] = "connected"


def test_the_next_map_reuses_the_workers_of_the_last_with_fresh_state() -> None:
    first = list(plait.map(remember, [1, 2], backend="process", workers=2, chunksize=1))
    second = list(plait.map(remember, [3, 4], backend="process", workers=2, chunksize=1))
    # A worker still starting when the first map ended was not kept; one that ran items was.
    assert {pid for pid, _ in second} & {pid for pid, _ in first}
    assert not {seen for _, seen in second} & {1, 2}  # nothing of the last pool's state


def test_workers_with_an_initializer_are_not_handed_on() -> None:
    spec = plait.Workers(1, initializer=connect)
    [(first, _)] = plait.map(remember, [1], backend="process", workers=spec)
    [(second, _)] = plait.map(remember, [2], backend="process", workers=spec)
    assert first != second
    assert has_exited(first) or _exits_soon(first)


def test_a_terminated_pool_hands_nothing_on() -> None:
    with plait.Pool("process", 1) as pool:
        first = pool.submit(os.getpid).result(timeout=30)
        pool.terminate()
    assert _exits_soon(first)
    with plait.Pool("process", 1) as pool:
        assert pool.submit(os.getpid).result(timeout=30) != first


def test_a_parked_worker_ends_by_itself_when_no_pool_comes(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, time
            import plait

            def gone(pid):
                try:
                    with open(f"/proc/{pid}/stat") as stat:
                        state = stat.read().rsplit(")", 1)[1].split()[0]
                except (FileNotFoundError, ProcessLookupError):
                    return True
                return state in "ZX"

            pids = set(plait.map(lambda _: os.getpid(), range(2), backend="process", chunksize=1))
            assert not any(gone(pid) for pid in pids)  # parked
            deadline = time.monotonic() + 20
            while not all(gone(pid) for pid in pids):
                assert time.monotonic() < deadline, "parked workers did not end by themselves"
                time.sleep(0.05)
            print("ended by themselves")
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        capture_output=True,
        text=True,
        timeout=50,
        env={**os.environ, "PLAIT_WARM_SECONDS": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "ended by themselves" in proc.stdout


def _exits_soon(pid: int) -> bool:
    deadline = time.monotonic() + 10
    while not has_exited(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.parametrize("how", ["exit", "ctrl-c"])
def test_warm_workers_end_with_the_program(tmp_path: Path, how: str) -> None:
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, signal, sys
            import plait
            from plait._backends.process import _template

            pids = set(plait.map(lambda _: os.getpid(), range(4), backend="process", chunksize=1))
            print(_template._template.pid, *pids, flush=True)  # the workers are parked now
            if sys.argv[1] == "ctrl-c":
                signal.raise_signal(signal.SIGINT)
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, str(script), how], capture_output=True, text=True, timeout=50
    )
    assert proc.returncode == (0 if how == "exit" else -signal.SIGINT), proc.stderr
    pids = [int(p) for p in proc.stdout.split()]
    assert len(pids) >= 2
    assert all(_exits_soon(pid) for pid in pids)


def test_warm_workers_that_died_as_they_were_taken_cost_no_item(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A taken worker gets its first tasks before it says READY; if it turns out to be dead
    (its idle limit, a kill), those tasks go to another worker, none failed or run twice."""
    from plait._backends.process import _warm

    first = {pid for pid, _ in plait.map(remember, [1, 2], backend="process", chunksize=1)}
    parked = {worker.proc.pid for worker, _, _ in _warm._parked}
    assert parked
    assert parked <= first
    for pid in parked:
        os.kill(pid, signal.SIGKILL)
    assert all(_exits_soon(pid) for pid in parked)
    # As if each died in the moment between the check that it lives and the pool's first write.
    monkeypatch.setattr(_warm, "_readable", lambda worker: False)
    results = list(plait.map(double, range(10), backend="process", workers=2, chunksize=1))
    assert results == [2 * x for x in range(10)]


def _park_two() -> None:
    from plait._backends.process import _warm

    list(plait.map(double, [1, 2], backend="process", workers=2, chunksize=1))
    assert len(_warm._parked) == 2


def test_a_function_that_does_not_pickle_still_fails_clearly_on_warm_workers() -> None:
    """The first task goes to a warm worker from the caller's thread; what cannot be sent is
    left to the dispatcher, which reports it as usual."""
    import threading

    _park_two()
    lock = threading.Lock()
    with pytest.raises(TypeError, match="lock") as info:
        list(plait.map(lambda x: (lock, x)[1], [1, 2], backend="process", workers=2))
    assert any("could not be pickled" in note for note in info.value.__notes__)
    assert list(plait.map(double, [3], backend="process", workers=2)) == [6]  # still usable


def test_items_that_do_not_pickle_still_fail_one_by_one_on_warm_workers() -> None:
    import threading

    _park_two()
    items = [threading.Lock(), 2, threading.Lock(), 4]  # the first batch: nothing pickles
    results = list(
        plait.map(str, items, backend="process", workers=2, chunksize=1, errors="return")
    )
    assert [type(r) for r in results] == [TypeError, str, TypeError, str]
    assert results[1::2] == ["2", "4"]


def test_a_shutdown_from_another_thread_while_the_first_task_is_sent_waits_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    from plait._backends.process import _dispatcher

    _park_two()
    sending, release = threading.Event(), threading.Event()
    send_early = _dispatcher.ProcessBackend._send_early

    def slow_send_early(self: _dispatcher.ProcessBackend) -> None:
        sending.set()
        assert release.wait(10)
        send_early(self)

    monkeypatch.setattr(_dispatcher.ProcessBackend, "_send_early", slow_send_early)
    pool = plait.Pool("process", workers=2)
    results: list[Future[int]] = []
    submitter = threading.Thread(target=lambda: results.append(pool.submit(double, 21)))
    submitter.start()
    assert sending.wait(10)
    closer = threading.Thread(target=pool.shutdown)  # wait=True: it must wait, not fail
    closer.start()
    release.set()
    submitter.join(10)
    closer.join(10)
    assert not submitter.is_alive()
    assert not closer.is_alive()
    [future] = results
    assert future.result(timeout=10) == 42


def read_env(name: str) -> str | None:
    return os.environ.get(name)


def test_a_warm_worker_is_not_taken_after_the_environment_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _park_two()
    monkeypatch.setenv("PLAIT_TEST_WARM_ENV", "changed")
    assert list(plait.map(read_env, ["PLAIT_TEST_WARM_ENV"], backend="process")) == ["changed"]


def test_a_warm_worker_gets_the_program_s_new_sys_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _park_two()
    (tmp_path / "plait_warm_extra.py").write_text("def triple(x):\n    return 3 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import plait_warm_extra  # type: ignore[import-not-found]

    try:  # sent by reference: the worker imports it, from the sys.path its INIT carries
        assert list(plait.map(plait_warm_extra.triple, [1, 2], backend="process")) == [3, 6]
    finally:
        sys.modules.pop("plait_warm_extra", None)


def wander(where: str) -> int:
    """A task that moves its worker: another directory, a variable, a sys.path entry."""
    os.chdir(where)
    os.environ["PLAIT_TEST_WANDERED"] = "yes"
    sys.path.append(where)
    return os.getpid()


def where_am_i(where: str) -> tuple[int, str, str | None, bool]:
    return os.getpid(), os.getcwd(), os.environ.get("PLAIT_TEST_WANDERED"), where in sys.path


def test_a_warm_worker_starts_where_the_program_is_not_where_the_last_pool_left_it(
    tmp_path: Path,
) -> None:
    """A task of one pool moved its worker; an unrelated next pool that took the worker warm
    ran in that directory, with that environment."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with plait.Pool("process", 1) as pool:
        first = pool.submit(wander, str(elsewhere)).result(timeout=30)
    with plait.Pool("process", 1) as pool:
        pid, cwd, variable, on_path = pool.submit(where_am_i, str(elsewhere)).result(timeout=30)
    assert pid == first  # the same worker, handed on
    assert (cwd, variable, on_path) == (os.getcwd(), None, False)
