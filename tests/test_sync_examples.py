"""Every examples/sync_*.py runs in a fresh interpreter, quickly, and says what it should."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXPECTED = {
    "sync_deadlock.py": ["DeadlockError", "'accounts'", "'audit_log'", "no hang"],
    "sync_pipeline.py": ["processed 40 jobs", "api: 40 calls", "sent 40, received 40"],
    "sync_lock_order.py": ["LockOrderWarning", "'cache'", "'index'", "1 inversion reported"],
}


def test_every_example_is_covered() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("sync_*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str) -> None:
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=30
    )
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    for text in EXPECTED[name]:
        assert text in proc.stdout, proc.stdout
    assert elapsed < 2.0 + 1.0  # the examples aim for 2 s; allow interpreter start on a busy box
