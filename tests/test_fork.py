"""A process forked while a process pool lives: the pool stays the parent's, the parent's
shutdown does not wait for the fork, and the fork is told to make a pool of its own.

The forks happen in a helper script, not in pytest's own process: a fork of pytest would
carry its plugins, threads and teardown along, and Python 3.12+ warns about forking a process
that runs threads (here, the pool's dispatcher), which pytest turns into an error.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import multiprocessing
    import os
    import sys
    import threading
    import time
    import warnings

    import plait


    def square(x):
        time.sleep(0.01)
        return x * x


    def use_the_parents_pool(pool, report, results=None, shut_down=False):
        try:
            pool.submit(abs, -1).result(timeout=5)
            report("no error")
        except plait.PoolClosed as exc:
            report(f"{type(exc).__name__}: {exc}")
        except BaseException as exc:
            report(f"wrong error {exc!r}")
        # What the message advises works: a pool of the child's own.
        report(f"own pool: {list(plait.map(abs, [-1, -2], backend='process', workers=1))}")
        if results is not None:  # the parent's map, started in the parent
            try:
                report(f"parent's map: gave {next(results)}")
            except plait.PoolClosed:
                report("parent's map: PoolClosed")
            except BaseException as exc:
                report(f"parent's map: wrong error {exc!r}")
        if shut_down:  # nothing to do in the fork (the parent shuts it down), and no wait
            started = time.monotonic()
            pool.shutdown()
            report(f"shut the parent's pool down: prompt {time.monotonic() - started < 1.0}")


    BACKEND = sys.argv[2] if len(sys.argv) > 2 else "process"


    def forked_child(pool, scenario, results=None):
        \"\"\"os.fork: the child reports on a pipe, then waits until the parent lets it end.\"\"\"
        report_r, report_w = os.pipe()
        release_r, release_w = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # forking with threads
            pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(report_r)
                os.close(release_w)
                with os.fdopen(report_w, "w") as out:
                    report = lambda line: print(line, file=out, flush=True)
                    use_the_parents_pool(pool, report, results, shut_down=True)
                os.read(release_r, 1)  # alive until the parent has shut its pool down
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(report_w)
        os.close(release_r)
        with os.fdopen(report_r) as lines:
            for line in lines:
                print(f"{scenario} child: {line.strip()}")
        return pid, release_w


    def shut_down_while_the_child_lives(pool, scenario, alive, release):
        started = time.monotonic()
        pool.shutdown()
        took = time.monotonic() - started
        print(f"{scenario} shutdown prompt: {took < 1.0} ({took:.3f} s)")
        print(f"{scenario} child alive during shutdown: {alive()}")
        release()


    def idle():
        pool = plait.Pool(BACKEND, workers=2)
        assert pool.submit(abs, -5).result() == 5  # workers running
        pid, release_w = forked_child(pool, "idle")
        alive = lambda: os.waitpid(pid, os.WNOHANG) == (0, 0)
        shut_down_while_the_child_lives(pool, "idle", alive, lambda: os.close(release_w))
        print(f"idle child exit: {os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])}")


    def mid_map():
        pool = plait.Pool(BACKEND, workers=2)
        results = pool.map(square, range(40), chunksize=1)
        first = next(results)
        pid, release_w = forked_child(pool, "mid-map", results)
        print(f"mid-map results: {[first, *results] == [x * x for x in range(40)]}")
        alive = lambda: os.waitpid(pid, os.WNOHANG) == (0, 0)
        shut_down_while_the_child_lives(pool, "mid-map", alive, lambda: os.close(release_w))
        os.waitpid(pid, 0)


    def multiprocessing_fork():
        context = multiprocessing.get_context("fork")
        pool = plait.Pool("process", workers=2)
        assert pool.submit(abs, -5).result() == 5
        receiver, sender = context.Pipe(duplex=False)
        release = context.Event()

        def child():
            use_the_parents_pool(pool, sender.send)
            release.wait(30)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            process = context.Process(target=child)
            process.start()
        for _ in range(2):
            print(f"multiprocessing child: {receiver.recv()}")
        shut_down_while_the_child_lives(pool, "multiprocessing", process.is_alive, release.set)
        process.join(30)
        print(f"multiprocessing child exit: {process.exitcode}")


    def after_a_pool_ended():
        # The ended pool's dispatcher thread now waits for the next pool, and its workers are
        # parked: neither exists in a fork, which must start its own.
        assert list(plait.map(abs, [-1, -2], backend="process", workers=2)) == [1, 2]
        waiting = [t.name for t in threading.enumerate() if t.name == "plait-spare"]
        print(f"ended: spare thread waits: {waiting == ['plait-spare']}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # forking with threads
            pid = os.fork()
        if pid == 0:
            code = 1
            try:
                print(f"ended child: {list(plait.map(abs, [-3, -4], backend='process'))}")
                code = 0
            finally:
                sys.stdout.flush()
                os._exit(code)
        print(f"ended child exit: {os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])}")
        print(f"ended parent: {list(plait.map(abs, [-5], backend='process'))}")


    def task_group():
        pid = -1
        try:
            with plait.TaskGroup() as group:
                handle = group.submit(time.sleep, 0.2)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)  # forking with threads
                    pid = os.fork()
                if pid == 0:
                    try:
                        handle.result(timeout=5)
                        print("task-group child: result returned", flush=True)
                    except plait.PoolClosed:
                        print("task-group child: result PoolClosed", flush=True)
        except plait.PoolClosed:
            print("task-group child: leaving the block PoolClosed", flush=True)
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        print(f"task-group parent: {handle.result()}")


    {
        "task-group": task_group,
        "idle": idle,
        "mid-map": mid_map,
        "multiprocessing": multiprocessing_fork,
        "ended": after_a_pool_ended,
    }[sys.argv[1]]()
    """
)

REFUSAL = (
    "child: PoolClosed: this pool belongs to the parent process (pid {pid}); this process is a "
    "fork of it and cannot use its workers: create a new plait.Pool (or call plait.map) in "
    "the child"
)


def run(tmp_path: Path, scenario: str, backend: str = "process") -> list[str]:
    script = tmp_path / "fork.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), scenario, backend],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:  # a hang: end it (and the test) rather than leak it
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert err == ""
    return [line.replace(str(proc.pid), "{pid}") for line in out.splitlines()]


# (A thread pool's threads, auto's, do not exist in a fork: using the pool there waited for good.)
BACKENDS = pytest.mark.parametrize("backend", ["process", "thread", "auto"])


@pytest.mark.timeout(60)
@BACKENDS
def test_fork_of_a_process_with_a_live_pool(tmp_path: Path, backend: str) -> None:
    out = run(tmp_path, "idle", backend)
    assert out[0] == "idle " + REFUSAL
    assert out[1:3] == [
        "idle child: own pool: [1, 2]",
        "idle child: shut the parent's pool down: prompt True",
    ]
    assert out[3].startswith("idle shutdown prompt: True")
    assert out[4:] == ["idle child alive during shutdown: True", "idle child exit: 0"]


@pytest.mark.timeout(60)
@BACKENDS
def test_fork_while_a_map_is_midway(tmp_path: Path, backend: str) -> None:
    out = run(tmp_path, "mid-map", backend)
    assert out[:5] == [
        "mid-map " + REFUSAL,
        "mid-map child: own pool: [1, 2]",
        "mid-map child: parent's map: PoolClosed",
        "mid-map child: shut the parent's pool down: prompt True",
        "mid-map results: True",
    ]
    assert out[5].startswith("mid-map shutdown prompt: True")
    assert out[6:] == ["mid-map child alive during shutdown: True"]


@pytest.mark.timeout(60)
def test_fork_by_multiprocessing(tmp_path: Path) -> None:
    out = run(tmp_path, "multiprocessing")
    assert out[:2] == ["multiprocessing " + REFUSAL, "multiprocessing child: own pool: [1, 2]"]
    assert out[2].startswith("multiprocessing shutdown prompt: True")
    assert out[3:] == [
        "multiprocessing child alive during shutdown: True",
        "multiprocessing child exit: 0",
    ]


@pytest.mark.timeout(60)
def test_fork_after_a_pool_ended_starts_its_own_threads_and_workers(tmp_path: Path) -> None:
    assert run(tmp_path, "ended") == [
        "ended: spare thread waits: True",
        "ended child: [3, 4]",
        "ended child exit: 0",
        "ended parent: [5]",
    ]


@pytest.mark.timeout(60)
def test_a_task_group_of_the_parent_in_a_fork(tmp_path: Path) -> None:
    """(Waiting for a task, or leaving the block, waited for good in the fork.)"""
    assert run(tmp_path, "task-group") == [
        "task-group child: result PoolClosed",
        "task-group child: leaving the block PoolClosed",
        "task-group parent: None",
    ]


GRAPH_SCRIPT = textwrap.dedent(
    """
    import os
    import threading
    import warnings

    from plait import sync
    from plait.sync import _registry

    warnings.simplefilter("ignore", DeprecationWarning)  # (fork with threads: on purpose)
    held, release = threading.Event(), threading.Event()


    def hold_the_graph():  # (as a thread blocking on a plait lock does, for a moment)
        with _registry.GRAPH_LOCK:
            held.set()
            release.wait(30)


    holder = threading.Thread(target=hold_the_graph)
    holder.start()
    held.wait(30)
    pid = os.fork()
    if pid == 0:
        lock = sync.Lock()
        lock.acquire()
        result = []
        contender = threading.Thread(target=lambda: result.append(lock.acquire(timeout=0.05)))
        contender.start()
        contender.join(10)
        os._exit(0 if result == [False] else 1)
    release.set()
    holder.join()
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    """
)


@pytest.mark.timeout(60)
def test_a_fork_while_another_thread_blocks_on_a_plait_lock(tmp_path: Path) -> None:
    """The child's timed acquire of a held lock returns in time. (The lock of the graph of
    waits, held by a thread of the parent at the fork, stayed held in the child: every timed
    or contended acquire of every plait lock there hung, whatever its timeout.)"""
    script = tmp_path / "graph.py"
    script.write_text(GRAPH_SCRIPT)
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=50)
    assert (ran.stdout.strip(), ran.stderr) == ("0", "")
