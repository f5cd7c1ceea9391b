"""Every examples/*.py but sync_* (see test_sync_examples.py) runs and says what it should."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXPECTED = {
    "async_functions.py": "the event loop kept running meanwhile",
    "map_downloads.py": "downloaded 40 pages",
    "retries_and_timeouts.py": "compute 3: TaskTimeout",
    "run_two_functions.py": "Both threads have finished.",
    "scale_out_dask.py": "item 3: TaskTimeout",
    "scale_out_ray.py": "item 3: WorkerCrashed",
    "taskgroup_cancellation.py": "the sleeping sibling was cancelled: True",
    "taskgroup_deadline.py": "sum_squares kept its partial result",
    "trace_a_run.py": "timeline written to",
}


# Seconds an example may take beyond the usual budget: one that starts a cluster.
EXTRA_SECONDS = {"scale_out_dask.py": 15.0, "scale_out_ray.py": 30.0}


def examples() -> list[str]:
    return sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("sync_"))


def test_every_example_is_covered() -> None:
    assert examples() == sorted(EXPECTED), "give each new example its expected line in EXPECTED"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", examples())
def test_example_runs(name: str) -> None:
    assert name in EXPECTED, f"{name} has no expected line in EXPECTED"
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=60
    )
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    assert EXPECTED[name] in proc.stdout, proc.stdout
    budget = 2.0 + 3.0 + EXTRA_SECONDS.get(name, 0.0)  # aim 2 s; a busy box is slower
    assert elapsed < budget, f"{name} took {elapsed:.1f} s"
