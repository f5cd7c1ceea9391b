"""Scripts of their own for the cluster backends' tests: a program that starts no cluster
itself, so that plait starts (and must end) one; one interrupted by Ctrl-C."""

from __future__ import annotations

import inspect
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NamedTuple

import psutil


def living(pids: list[int]) -> list[int]:
    """Those of ``pids`` whose process runs still: a zombie has ended, and a process may be
    gone (and reaped) between any two questions about it."""
    running = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                running.append(pid)
        except psutil.NoSuchProcess:
            pass
    return running


# The same function, for the scripts below to define.
LIVING = "import psutil\n\n" + inspect.getsource(living).replace(": list[int]", "").replace(
    " -> list[int]", ""
)

# A pool that plait's cluster backend starts its cluster for, terminated with an item running.
TERMINATE = LIVING + textwrap.dedent(
    """
    import time
    import psutil
    import plait

    def work(x):
        if x == 1:
            time.sleep(600)
        return x

    me = psutil.Process()
    pool = plait.Pool("{backend}", 2)
    futures = [pool.submit(work, x) for x in range(2)]
    print("first", futures[0].result(timeout=120))
    cluster = [child.pid for child in me.children(recursive=True)]
    started = time.monotonic()
    pool.terminate()
    print("prompt", time.monotonic() - started < 10)
    print("hung item", type(futures[1].exception(timeout=10)).__name__)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and living(cluster):
        time.sleep(0.1)
    print("left running", living(cluster))
    """
)

# A map interrupted by Ctrl-C while items run on the cluster plait started.
CTRL_C = textwrap.dedent(
    """
    import faulthandler
    import os
    import signal
    import sys
    import time
    from pathlib import Path
    import psutil
    import plait

    PIDS = Path(sys.argv[1])  # (a global of __main__: it travels with the function)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # (see interrupt: a stuck run)

    def work(x):
        if x >= 1:  # (written whole, then named: a reader never finds it empty)
            partial = PIDS.with_name(f"partial-{{x}}")
            partial.write_text(str(os.getpid()))
            partial.rename(PIDS.with_name(f"running-{{x}}"))
            time.sleep(600)
        return x

    me = psutil.Process()
    results = plait.map(work, range(4), backend="{backend}", chunksize=1)
    try:
        print("first", next(results), flush=True)
        deadline = time.monotonic() + 60  # until two items run on the cluster
        while len(list(PIDS.parent.glob("running-*"))) < 2:
            assert time.monotonic() < deadline, "the items never started"
            time.sleep(0.01)
        with open(sys.argv[1], "w") as out:
            out.write(" ".join(str(c.pid) for c in me.children(recursive=True)))
        print("ready", flush=True)
        for _ in results:
            pass
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    """
)


# A script still running after this long dumps its threads' stacks and exits, before the wait
# for it (150 s) and the test's own timeout: a test that fails so says where it was stuck, and
# what it had printed.
STUCK_AFTER = 120


def run_script(tmp_path: Path, code: str, *args: str) -> list[str]:
    """Run ``code`` as a script of its own; its lines."""
    script = tmp_path / "script.py"
    watchdog = f"import faulthandler\nfaulthandler.dump_traceback_later({STUCK_AFTER}, exit=True)\n"
    script.write_text(watchdog + code)
    proc = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=150
    )
    assert proc.returncode == 0, f"exit {proc.returncode}, after {proc.stdout!r}:\n{proc.stderr}"
    return proc.stdout.splitlines()


@dataclass
class Interrupted:
    out: str
    err: str
    returncode: int
    took: float  # seconds from the SIGINT to the script's exit
    cluster: list[int]  # the script's child processes (recursively) before the SIGINT
    stopped: float | None  # seconds from the SIGINT until no item ran on (None: never)


def interrupt(tmp_path: Path, code: str) -> Interrupted:
    """Run ``code``, which prints "first ..." and then "ready" once it has written its child
    processes' pids to the file named by its first argument; then send it SIGINT. The items
    that run write their process's pid to ``running-*`` files beside it: how long until
    none of those processes is left is ``stopped``. A script stuck at any step fails the test
    with its threads' stacks (it dumps them on SIGUSR1), not at the test's own timeout, which
    would say nothing of where it was."""
    script = tmp_path / "ctrl_c.py"
    script.write_text(code)
    pids_file = tmp_path / "pids"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(pids_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Both pipes read on threads: a read of the script's output waits a bounded time, and
    # its stderr (Ray's warnings) never fills its pipe while the script runs.
    lines: queue.Queue[str] = queue.Queue()
    errors: queue.Queue[str] = queue.Queue()
    stderr = _Stderr(errors, _drain(proc.stderr, errors))
    readers = [_drain(proc.stdout, lines), stderr.reader]
    try:
        # (A cluster's start on a busy 2-core machine has taken 20 s; this is far beyond.)
        first = _line(proc, lines, stderr, 120, "first")
        ready = _line(proc, lines, stderr, 60, "ready")
        assert (first, ready) == ("first 0\n", "ready\n"), _stuck(proc, stderr, "its lines")
        cluster = [int(pid) for pid in pids_file.read_text().split()]
        running = [int(path.read_text()) for path in tmp_path.glob("running-*")]
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        stopped = None
        while time.monotonic() - started < 60:
            if not living(running):
                stopped = time.monotonic() - started
                break
            time.sleep(0.01)
        try:
            proc.wait(timeout=max(1.0, 60 - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            raise AssertionError(_stuck(proc, stderr, "its exit after Ctrl-C")) from None
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for reader in readers:  # (a process it started that outlived it holds a pipe open)
            reader.join(30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert not any(reader.is_alive() for reader in readers), "its output is held open"
    out, err = "".join(lines.queue), "".join(errors.queue)
    return Interrupted(out, err, proc.returncode, took, cluster, stopped)


def _drain(stream: IO[str] | None, into: queue.Queue[str]) -> threading.Thread:
    """A thread that puts each line of ``stream`` into ``into`` until it ends."""

    def drain() -> None:
        assert stream is not None
        for line in stream:
            into.put(line)

    reader = threading.Thread(target=drain, name="script-output", daemon=True)
    reader.start()
    return reader


def _line(
    proc: subprocess.Popen[str],
    lines: queue.Queue[str],
    stderr: _Stderr,
    seconds: float,
    what: str,
) -> str:
    """The script's next line of output, waited for ``seconds`` at most."""
    try:
        return lines.get(timeout=seconds)
    except queue.Empty:
        raise AssertionError(_stuck(proc, stderr, f"its line {what!r} in {seconds} s")) from None


class _Stderr(NamedTuple):
    lines: queue.Queue[str]
    reader: threading.Thread


def _stuck(proc: subprocess.Popen[str], stderr: _Stderr, waited_for: str) -> str:
    """Why a script failed a step: its stderr, which holds every thread's stack if it still
    ran (it dumps them on SIGUSR1)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGUSR1)
        time.sleep(2)  # (a dump of a few stacks takes milliseconds)
        proc.kill()
    proc.wait()
    stderr.reader.join(10)
    return (
        f"the script did not give {waited_for}; its stderr:\n" + "".join(stderr.lines.queue)[-8000:]
    )
