"""Attacks at interpreter exit: what a pool that is still open does with work it accepted."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import sys, time, pathlib
    import plait

    out = pathlib.Path(sys.argv[1])

    def work(i):
        time.sleep(0.2)
        with out.open("a") as f:
            f.write(f"{i}\\n")

    pool = plait.Pool(sys.argv[2], workers=2)
    for i in range(4):
        pool.submit(work, i)
    if sys.argv[3] == "shutdown(wait=False)":
        pool.shutdown(wait=False)
    elif sys.argv[3] == "dropped":
        del pool
    # the script ends here
    """
)


def run_script(tmp_path: Path, backend: str, how: str) -> list[str]:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out.txt"
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", str(script), str(out), backend, how],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    return sorted(out.read_text().split() if out.exists() else [])


@pytest.mark.timeout(60)
def test_work_submitted_to_an_open_thread_pool_runs_before_exit(tmp_path: Path) -> None:
    """Pool is "a concurrent.futures.Executor ... it keeps the Executor contract", and its
    __del__ shuts down with cancel_pending=False ("pending work still runs"). A
    ThreadPoolExecutor left open at exit runs everything it accepted (its threads are joined
    at exit); plait's worker threads are daemons, so the interpreter exits under them and the
    accepted work is silently lost (0 of 4 ran here)."""
    assert run_script(tmp_path, "thread", "left open") == ["0", "1", "2", "3"]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("backend", ["thread", "process", "auto"])
@pytest.mark.parametrize("how", ["shutdown(wait=False)", "dropped"])
def test_work_a_pool_accepted_runs_before_exit_whatever_wait_said(
    tmp_path: Path, backend: str, how: str
) -> None:
    """concurrent.futures: "Regardless of the value of wait, the entire Python program will
    not exit until all pending futures are done executing." A pool shut down without waiting,
    or collected (its __del__ does that), lost every call still queued at exit (0 of 4)."""
    assert run_script(tmp_path, backend, how) == ["0", "1", "2", "3"]
