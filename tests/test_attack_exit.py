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

    pool = plait.Pool("thread", workers=2)
    for i in range(4):
        pool.submit(work, i)
    # the script ends here, its pool still open (a module-level global)
    """
)


@pytest.mark.timeout(60)
def test_work_submitted_to_an_open_thread_pool_runs_before_exit(tmp_path: Path) -> None:
    """Pool is "a concurrent.futures.Executor ... it keeps the Executor contract", and its
    __del__ shuts down with cancel_pending=False ("pending work still runs"). A
    ThreadPoolExecutor left open at exit runs everything it accepted (its threads are joined
    at exit); plait's worker threads are daemons, so the interpreter exits under them and the
    accepted work is silently lost (0 of 4 ran here)."""
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out.txt"
    proc = subprocess.run(
        [sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    ran = out.read_text().split() if out.exists() else []
    assert sorted(ran) == ["0", "1", "2", "3"], (ran, proc.stderr)
