"""How many worker processes a pool starts: as many as its work needs, up to ``workers``; and
how many it may have: as many as the open-file limit (``ulimit -n``) holds."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import plait
from conftest import child_pids
from plait._backends._auto import _within_open_files
from plait._backends.process import _limits
from plait._plan import Plan


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


# -- what the open-file limit holds ----------------------------------------------------------


@pytest.fixture
def ulimit_1024(monkeypatch: pytest.MonkeyPatch) -> int:
    """``ulimit -n 1024`` as the pool sees it; the most workers that leaves room for."""
    monkeypatch.setattr(_limits, "open_file_limit", lambda: 1024)
    return (1024 - _limits.FDS_KEPT_FREE) // _limits.FDS_PER_WORKER


def test_a_count_past_the_open_file_limit_is_refused_at_the_call(ulimit_1024: int) -> None:
    # 2**70 workers (or 5,000, with ulimit -n 1024) forked and forked until the limit, then
    # hung the call; a count no pool can hold is now refused where it is given.
    most = ulimit_1024
    expected = rf"workers={most + 1}: too many .*ulimit -n 1024.* room for {most} workers"
    with pytest.raises(ValueError, match=expected):
        plait.map(abs, [1], backend="process", workers=most + 1)
    with pytest.raises(ValueError, match=f"workers={2**70}: too many worker processes"):
        plait.Pool("process", workers=2**70)
    with pytest.raises(ValueError, match="too many worker processes"):
        plait.TaskGroup(backend="process", workers=plait.Workers(2**70))
    with plait.Pool("process", workers=most) as pool:  # as many as it holds: they start as needed
        assert pool.submit(abs, -1).result(timeout=30) == 1


def test_plait_workers_past_the_limit_is_refused_and_named(
    monkeypatch: pytest.MonkeyPatch, ulimit_1024: int
) -> None:
    monkeypatch.setenv("PLAIT_WORKERS", "99999999999")
    with pytest.raises(ValueError, match="PLAIT_WORKERS=99999999999"):
        plait.map(abs, [1], backend="process")


def test_one_per_core_past_the_limit_is_cut_to_it(
    monkeypatch: pytest.MonkeyPatch, ulimit_1024: int
) -> None:
    # A count nobody gave (a machine of more cores than ulimit -n leaves room for) is no error.
    monkeypatch.setattr(_limits, "process_workers", lambda: 10_000)
    for unset in (None, ""):  # (PLAIT_WORKERS= , empty, is as if unset)
        if unset is None:
            monkeypatch.delenv("PLAIT_WORKERS", raising=False)
        else:
            monkeypatch.setenv("PLAIT_WORKERS", unset)
        with plait.Pool("process") as pool:
            assert pool.workers == ulimit_1024


def test_auto_picks_processes_only_as_many_as_the_limit_holds(ulimit_1024: int) -> None:
    # workers=2**70 on auto also sizes its threads (work that waits): not refused; a process
    # plan is cut to the limit, and says so.
    assert list(plait.map(abs, [-1, -2], workers=2**70)) == [1, 2]
    plan = _within_open_files(Plan("process", 2**70, "it computes holding the GIL"))
    assert plan.workers == ulimit_1024
    assert f"; {ulimit_1024} processes, as many as the open-file limit holds" in plan.reason
