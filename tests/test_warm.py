"""Warm workers: a pool that ends hands its idle workers on to the next one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import plait
from conftest import has_exited

pytestmark = pytest.mark.timeout(60)


def remember(x: int) -> tuple[int, object]:
    state = plait.worker_state()
    seen = state.get("mark")
    state["mark"] = x
    return os.getpid(), seen


def double(x: int) -> int:
    return 2 * x


def connect() -> None:
    plait.worker_state()["db"] = "connected"


def test_the_next_map_reuses_the_workers_of_the_last_with_fresh_state() -> None:
    first = list(plait.map(remember, [1, 2], backend="process", workers=2, chunksize=1))
    second = list(plait.map(remember, [3, 4], backend="process", workers=2, chunksize=1))
    # A worker still starting when the first map ended was not kept; one that ran items was.
    assert {pid for pid, _ in second} & {pid for pid, _ in first}
    assert not {seen for _, seen in second} & {1, 2}  # nothing of the last pool's state


def test_workers_with_an_initializer_are_not_handed_on() -> None:
    spec = plait.Workers(1, initializer=connect)
    [(first, _)] = plait.map(remember, [1], backend="process", workers=spec)
    [(second, _)] = plait.map(remember, [2], backend="process", workers=spec)
    assert first != second
    assert has_exited(first) or _exits_soon(first)


def test_a_terminated_pool_hands_nothing_on() -> None:
    with plait.Pool("process", 1) as pool:
        first = pool.submit(os.getpid).result(timeout=30)
        pool.terminate()
    assert _exits_soon(first)
    with plait.Pool("process", 1) as pool:
        assert pool.submit(os.getpid).result(timeout=30) != first


def test_a_parked_worker_ends_by_itself_when_no_pool_comes(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, time
            import plait

            def gone(pid):
                try:
                    with open(f"/proc/{pid}/stat") as stat:
                        state = stat.read().rsplit(")", 1)[1].split()[0]
                except FileNotFoundError:
                    return True
                return state in "ZX"

            pids = set(plait.map(lambda _: os.getpid(), range(2), backend="process", chunksize=1))
            assert not any(gone(pid) for pid in pids)  # parked
            deadline = time.monotonic() + 20
            while not all(gone(pid) for pid in pids):
                assert time.monotonic() < deadline, "parked workers did not end by themselves"
                time.sleep(0.05)
            print("ended by themselves")
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        capture_output=True,
        text=True,
        timeout=50,
        env={**os.environ, "PLAIT_WARM_SECONDS": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "ended by themselves" in proc.stdout


def _exits_soon(pid: int) -> bool:
    deadline = time.monotonic() + 10
    while not has_exited(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.parametrize("how", ["exit", "ctrl-c"])
def test_warm_workers_end_with_the_program(tmp_path: Path, how: str) -> None:
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, signal, sys
            import plait
            from plait._backends.process import _template

            pids = set(plait.map(lambda _: os.getpid(), range(4), backend="process", chunksize=1))
            print(_template._template.pid, *pids, flush=True)  # the workers are parked now
            if sys.argv[1] == "ctrl-c":
                signal.raise_signal(signal.SIGINT)
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, str(script), how], capture_output=True, text=True, timeout=50
    )
    assert proc.returncode == (0 if how == "exit" else -signal.SIGINT), proc.stderr
    pids = [int(p) for p in proc.stdout.split()]
    assert len(pids) >= 2
    assert all(_exits_soon(pid) for pid in pids)


def test_warm_workers_that_died_as_they_were_taken_cost_no_item(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A taken worker gets its first tasks before it says READY; if it turns out to be dead
    (its idle limit, a kill), those tasks go to another worker, none failed or run twice."""
    from plait._backends.process import _warm

    first = {pid for pid, _ in plait.map(remember, [1, 2], backend="process", chunksize=1)}
    parked = {worker.proc.pid for worker, _, _ in _warm._parked}
    assert parked
    assert parked <= first
    for pid in parked:
        os.kill(pid, signal.SIGKILL)
    assert all(_exits_soon(pid) for pid in parked)
    # As if each died in the moment between the check that it lives and the pool's first write.
    monkeypatch.setattr(_warm, "_readable", lambda worker: False)
    results = list(plait.map(double, range(10), backend="process", workers=2, chunksize=1))
    assert results == [2 * x for x in range(10)]
