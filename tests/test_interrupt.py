"""Ctrl-C and interpreter exit, for real: a child Python running a map, sent SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import plait

    def slow(x):
        if x >= 0:
            sys.stdout.write(f"started {os.getpid()}\\n")  # one write: threads do not mix
            sys.stdout.flush()
            time.sleep(60)
        return x

    backend, mode = sys.argv[1], sys.argv[2]
    if mode == "interrupt":
        try:
            for _ in plait.map(slow, range(100), backend=backend, workers=2, chunksize=1):
                pass
        except KeyboardInterrupt:
            print(f"interrupted {time.monotonic()}", flush=True)
            raise
    else:  # abandon: take one result, leave the map running, and let the script end
        results = plait.map(slow, range(-1, 100), backend=backend, workers=2, chunksize=1)
        assert next(results) == -1
        sys.stdin.readline()  # the test says when both workers are busy
        print(f"ending {time.monotonic()}", flush=True)
    """
)


@contextmanager
def run_script(
    tmp_path: Path, backend: str, mode: str, code: str = SCRIPT
) -> Iterator[subprocess.Popen[str]]:
    script = tmp_path / "script.py"
    script.write_text(code)
    proc = subprocess.Popen(
        [sys.executable, "-X", "faulthandler", str(script), backend, mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: Ctrl-C is sent to the whole group
    )
    try:
        yield proc
    except subprocess.TimeoutExpired:  # where is it stuck? faulthandler prints every stack
        os.kill(proc.pid, signal.SIGABRT)
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"the script hung; its stacks:\n{err[-6000:]}")
    finally:  # a failed test must not leave the script or its workers behind
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


def wait_for_starts(proc: subprocess.Popen[str], count: int) -> set[int]:
    assert proc.stdout is not None
    pids = set()
    for _ in range(count):
        line = proc.stdout.readline()
        assert line.startswith("started"), line
        pids.add(int(line.split()[1]))
    return pids


def gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


@pytest.mark.timeout(30)
def test_one_ctrl_c_stops_the_map_within_a_second(backend: str, tmp_path: Path) -> None:
    with run_script(tmp_path, backend, "interrupt") as proc:
        pids = wait_for_starts(proc, 2)
        sent = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        out, err = proc.communicate(timeout=20)
    assert "KeyboardInterrupt" in err
    interrupted = float(out.split("interrupted ")[1].split()[0])
    assert interrupted - sent < 1.0, f"KeyboardInterrupt came {interrupted - sent:.2f}s later"
    assert proc.returncode == -signal.SIGINT
    if backend == "process":
        assert len(pids) == 2
        assert all(gone(pid) for pid in pids), "a worker process outlived the interrupt"


# A `with` block that only submits: the Ctrl-C comes while its end waits for the work.
WITH_BLOCK = textwrap.dedent(
    """
    import os, sys, time
    import plait

    def slow(x):
        sys.stdout.write(f"started {os.getpid()}\\n")
        sys.stdout.flush()
        time.sleep(60)
        return x

    try:
        with plait.Pool(sys.argv[1], workers=2) as pool:
            futures = [pool.submit(slow, i) for i in range(6)]
    except KeyboardInterrupt:
        print(f"interrupted {time.monotonic()}", flush=True)
        print("pending cancelled", all(future.cancelled() for future in futures[2:]), flush=True)
    """
)


@pytest.mark.timeout(30)
def test_a_ctrl_c_as_a_pool_block_ends_stops_the_pool(backend: str, tmp_path: Path) -> None:
    """The Ctrl-C reached the code, but the pool went on: its end's wait was interrupted, not
    the block, so nothing terminated it: the pending calls started one after another and the
    workers ran on, in a program that caught the Ctrl-C (a notebook). Now it is terminated, as
    after a Ctrl-C in the block."""
    with run_script(tmp_path, backend, "", WITH_BLOCK) as proc:
        pids = wait_for_starts(proc, 2)
        sent = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert "pending cancelled True" in out, (out, err)
    interrupted = float(out.split("interrupted ")[1].split()[0])
    assert interrupted - sent < 1.5, f"KeyboardInterrupt came {interrupted - sent:.2f}s later"
    if backend == "process":
        assert all(gone(pid) for pid in pids), "a worker process outlived the interrupt"


ELSEWHERE = textwrap.dedent(
    """
    import signal, sys, threading, time
    import plait

    def waiting(frame):
        return frame is not None and frame.f_code.co_name == "wait"

    def slow(x):
        if x == 0:  # a Ctrl-C that the kernel hands to this worker, not to the main thread
            main = threading.main_thread().ident
            deadline = time.monotonic() + 10
            while not waiting(sys._current_frames().get(main)) and time.monotonic() < deadline:
                time.sleep(0.01)
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)
        time.sleep(30)
        return x

    try:
        for _ in plait.map(slow, range(4), backend="thread", workers=2, chunksize=1):
            pass
    except KeyboardInterrupt:
        print(f"interrupted {time.monotonic()}", flush=True)
    """
)


@pytest.mark.timeout(30)
def test_a_ctrl_c_delivered_to_a_worker_thread_still_stops_the_map(tmp_path: Path) -> None:
    """Python runs signal handlers in the main thread, but the kernel may deliver a process's
    SIGINT to any of its threads: a main thread blocked waiting for results must still see it
    (a loaded suite run once hung here)."""
    script = tmp_path / "elsewhere.py"
    script.write_text(ELSEWHERE)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=25)
    assert "interrupted" in proc.stdout, proc.stderr
    interrupted = float(proc.stdout.split("interrupted ")[1].split()[0])
    assert interrupted - started < 10, "the Ctrl-C was seen only after the sleeps ended"


# The Ctrl-C comes to a worker thread, asleep in a system call, while the block's end waits for
# the work (as a terminal's Ctrl-C may: the kernel hands it to any thread of the process).
ELSEWHERE_AT_THE_END = textwrap.dedent(
    """
    import signal, sys, threading, time
    import plait

    idents = []

    def waiting(frame):
        return frame is not None and frame.f_code.co_name in ("wait", "wait_for", "join")

    def slow(x):
        idents.append(threading.get_ident())
        time.sleep(30)
        return x

    def killer():
        main = threading.main_thread().ident
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            frames = sys._current_frames()
            if idents and waiting(frames.get(main)) and all(
                frames.get(i) is not None and frames[i].f_code.co_name == "slow" for i in idents
            ):
                break
            time.sleep(0.01)
        time.sleep(0.2)  # (the worker is in its sleep, a system call)
        signal.pthread_kill(idents[0], signal.SIGINT)

    began = time.monotonic()
    threading.Thread(target=killer, daemon=True).start()
    try:
        with plait.Pool(sys.argv[1], workers=2) as pool:
            futures = [pool.submit(slow, i) for i in range(2)]
    except KeyboardInterrupt:
        print(f"interrupted after {time.monotonic() - began:.1f}", flush=True)
    """
)


@pytest.mark.timeout(40)
def test_a_ctrl_c_given_to_a_worker_thread_stops_a_pool_blocks_end(tmp_path: Path) -> None:
    """The main thread waited for the pool's threads without a break: a Ctrl-C the kernel gave
    to a worker thread was seen only once the tasks ended (30 s here; a loaded suite run
    failed so)."""
    script = tmp_path / "elsewhere_at_the_end.py"
    script.write_text(ELSEWHERE_AT_THE_END)
    proc = subprocess.run(
        [sys.executable, str(script), "thread"], capture_output=True, text=True, timeout=35
    )
    assert "interrupted after" in proc.stdout, proc.stderr
    took = float(proc.stdout.split("interrupted after ")[1].split()[0])
    assert took < 20, f"the Ctrl-C was seen only after {took} s"


@pytest.mark.timeout(30)
def test_interpreter_exits_promptly_with_a_map_abandoned_midway(
    backend: str, tmp_path: Path
) -> None:
    with run_script(tmp_path, backend, "abandon") as proc:
        pids = wait_for_starts(proc, 2)
        out, err = proc.communicate("go\n", timeout=20)
        exited = time.monotonic()
    assert proc.returncode == 0, err
    ending = float(out.split("ending ")[1].split()[0])
    assert exited - ending < 5, f"exit took {exited - ending:.1f}s"  # not the tasks' 60 s
    if backend == "process":
        assert all(gone(pid) for pid in pids), "a worker process outlived the interpreter"


def is_running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for init to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):  # (gone before the open, or during it)
        return False
    return state != "Z"


@pytest.mark.timeout(30)
def test_workers_end_when_their_parent_is_killed(tmp_path: Path) -> None:
    with run_script(tmp_path, "process", "interrupt") as proc:
        pids = wait_for_starts(proc, 2)
        os.kill(proc.pid, signal.SIGKILL)  # the parent alone, with no chance to clean up...
        proc.communicate(timeout=20)
    try:
        deadline = time.monotonic() + 10  # ...so the workers must notice by themselves
        while any(is_running(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(is_running(pid) for pid in pids), "a worker outlived its killed parent"
    finally:
        for pid in pids:
            if is_running(pid):
                os.kill(pid, signal.SIGKILL)
