"""The template process that forks workers: fast, and none of fork's traps.

Each case runs as a script of its own, so that whether the program is single-threaded when its
first pool starts (the template is then forked from it) is the script's choice, not pytest's.
Warnings are errors in every script: a fork of a multi-threaded process would warn on 3.12+.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import has_exited

pytestmark = pytest.mark.timeout(60)

HEADER = textwrap.dedent(
    """
    import os, sys, threading, time
    import plait
    from plait._backends.process import _template

    def info(_: object) -> tuple[int, int, str, str | None, float]:
        import random
        return os.getpid(), os.getppid(), os.getcwd(), os.environ.get("PLAIT_T"), random.random()
    """
)


def run(tmp_path: Path, body: str, *args: str) -> str:
    script = tmp_path / "script.py"
    script.write_text(HEADER + textwrap.dedent(body))
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(script), *args],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return proc.stdout


@pytest.mark.parametrize("threaded", [False, True])
def test_workers_come_from_the_template_forked_or_fresh(tmp_path: Path, threaded: bool) -> None:
    out = run(
        tmp_path,
        """
        if sys.argv[1] == "threaded":  # a thread that runs while the first pool starts
            stop = threading.Event()
            threading.Thread(target=stop.wait).start()
        results = list(plait.map(info, range(4), backend="process", workers=2, chunksize=1))
        template = _template._template
        print("forked", template.forked)
        print("parents", {parent == template.pid for _, parent, *_ in results})
        print("randoms", len({r for *_, r in results}) == len(results))
        if sys.argv[1] == "threaded":
            stop.set()
        """,
        "threaded" if threaded else "single",
    )
    assert f"forked {not threaded}" in out
    assert "parents {True}" in out  # every worker is the template's child
    assert "randoms True" in out  # each worker has random state of its own


@pytest.mark.parametrize("threaded", [False, True])
def test_descriptors_past_1023_are_watched(tmp_path: Path, threaded: bool) -> None:
    """A program with over a thousand files open: its workers' sockets and status pipes, and a
    template started fresh its own socket, get numbers past 1023, which select() refused
    ("filedescriptor out of range in select()": the dispatcher thread died after the results,
    and the template, started fresh, at once)."""
    out = run(
        tmp_path,
        """
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 2048 and (hard == resource.RLIM_INFINITY or hard >= 2048):
            resource.setrlimit(resource.RLIMIT_NOFILE, (2048, hard))
        elif soft < 2048:
            print("skip: ulimit -n cannot reach 2048")
            sys.exit(0)
        held = [os.open(os.devnull, os.O_RDONLY)]
        while held[-1] < 1100:  # (every lower number taken: what opens next is past 1100)
            held.append(os.dup(held[0]))
        if sys.argv[1] == "threaded":  # the template is started fresh, not forked
            stop = threading.Event()
            threading.Thread(target=stop.wait).start()
        for _ in range(2):  # the second pool takes the first one's parked workers
            with plait.Pool("process", workers=2) as pool:
                print(list(pool.map(abs, [-1, -2, -3], chunksize=1)))
        print("forked", _template._template.forked)
        if sys.argv[1] == "threaded":
            stop.set()
        """,
        "threaded" if threaded else "single",
    )
    if out.startswith("skip"):
        pytest.skip(out)
    assert out.splitlines() == ["[1, 2, 3]", "[1, 2, 3]", f"forked {not threaded}"]


def test_a_worker_starts_where_the_program_is_now(tmp_path: Path) -> None:
    """Directory, environment and standard output are the program's at the worker's start,
    not at the template's."""
    (tmp_path / "sub").mkdir()
    out = run(
        tmp_path,
        """
        assert list(plait.map(abs, [-1], backend="process")) == [1]  # the template exists now
        os.chdir("sub")
        os.environ["PLAIT_T"] = "set later"
        log = os.open("worker-output.txt", os.O_WRONLY | os.O_CREAT)
        saved = os.dup(1)
        os.dup2(log, 1)  # this program's output goes to a file from now on
        def shout(x):
            print("from the worker", flush=True)
            return info(x)
        [(_, _, cwd, env, _)] = plait.map(shout, [0], backend="process")
        os.dup2(saved, 1)
        print("cwd", os.path.basename(cwd), "env", env)
        with open("worker-output.txt") as written:
            print("file", written.read().strip())
        """,
    )
    assert "cwd sub env set later" in out
    assert "file from the worker" in out


def test_the_template_and_its_workers_end_with_the_program(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        """
        pool = plait.Pool("process", 2)  # left open: exit must end it all the same
        pids = {pool.submit(os.getpid).result() for _ in range(20)}
        print("pids", _template._template.pid, *pids)
        """,
    )
    pids = [int(p) for p in out.split("pids", 1)[1].split()]
    deadline = time.monotonic() + 10
    while not all(has_exited(pid) for pid in pids):
        assert time.monotonic() < deadline, f"still running: {pids}"
        time.sleep(0.01)


def test_a_killed_program_takes_its_template_and_workers_with_it(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(
        HEADER
        + textwrap.dedent(
            """
            pool = plait.Pool("process", 2)
            pids = {pool.submit(os.getpid).result() for _ in range(20)}
            print(_template._template.pid, *pids, flush=True)
            time.sleep(60)
            """
        )
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) >= 2
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    deadline = time.monotonic() + 10
    while not all(has_exited(pid) for pid in pids):
        assert time.monotonic() < deadline, f"still running: {pids}"
        time.sleep(0.01)


def test_a_template_that_died_is_made_again(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        """
        assert list(plait.map(abs, [-1], backend="process")) == [1]
        first = _template._template.pid
        os.kill(first, 9)
        while os.waitpid(first, os.WNOHANG) == (0, 0) if _template._template.forked else False:
            time.sleep(0.01)
        assert list(plait.map(abs, [-2, -3], backend="process")) == [2, 3]
        print("again", _template._template.pid != first)
        """,
    )
    assert "again True" in out


def test_a_template_killed_under_a_running_pool_is_made_again(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        """
        def gone(pid):
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    state = stat.read().rsplit(")", 1)[1].split()[0]
            except (FileNotFoundError, ProcessLookupError):
                return True
            return state in "ZX"

        with plait.Pool("process", 1) as pool:
            first = pool.submit(os.getpid).result(timeout=30)
            template = _template._template.pid
            os.kill(template, 9)
            deadline = time.monotonic() + 20
            while not gone(first):  # a worker ends with its template
                assert time.monotonic() < deadline
                time.sleep(0.01)
            for attempt in range(5):  # the pool may learn of the loss from this very task
                try:
                    second = pool.submit(os.getpid).result(timeout=30)
                    break
                except plait.WorkerCrashed:
                    continue
        print("replaced", second != first, _template._template.pid != template)
        """,
    )
    assert "replaced True True" in out


def test_a_fork_of_the_program_does_not_share_its_template(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        """
        assert list(plait.map(abs, [-1], backend="process")) == [1]
        parents_template = _template._template.pid
        pid = os.fork()
        if pid == 0:
            ok = list(plait.map(abs, [-5], backend="process")) == [5]
            mine = _template._template.pid
            os._exit(0 if ok and mine != parents_template else 1)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        assert list(plait.map(abs, [-4], backend="process")) == [4]
        print("same", _template._template.pid == parents_template)
        """,
    )
    assert "child 0" in out
    assert "same True" in out
