"""How many worker processes a pool starts: as many as its work needs, up to ``workers``."""

from __future__ import annotations

import os
import time
from pathlib import Path

import plait
from conftest import child_pids


def meet(folder: str, count: int) -> int:
    """Say this worker is here, and wait until ``count`` workers are (30 s at most)."""
    Path(folder, str(os.getpid())).touch()
    deadline = time.monotonic() + 30
    while len(os.listdir(folder)) < count and time.monotonic() < deadline:
        time.sleep(0.005)
    return os.getpid()


def test_a_small_map_starts_no_more_processes_than_it_has_items() -> None:
    # Every worker was forked up front: 64 here, 300 took 0.8 s before a 5-item map's first
    # result, and 5,000 did not start within 25 s.
    before = child_pids()
    with plait.Pool("process", workers=64) as pool:
        assert list(pool.map(abs, [-1, -2], chunksize=1)) == [1, 2]
        started = child_pids() - before
    assert 1 <= len(started) <= 2


def test_calls_made_one_after_another_need_one_process() -> None:
    before = child_pids()
    with plait.Pool("process", workers=8) as pool:
        for x in range(5):  # (each ends before the next is submitted: one worker is free)
            assert pool.submit(abs, -x).result(timeout=30) == x
        assert len(child_pids() - before) == 1


def test_work_that_needs_every_worker_at_once_gets_them(tmp_path: Path) -> None:
    # Three items that each wait until all three run: only three workers at once end them.
    with plait.Pool("process", workers=3) as pool:
        pids = list(pool.map(meet, [str(tmp_path)] * 3, [3] * 3, chunksize=1))
    assert len(set(pids)) == 3
