"""Shared fixtures: every test is checked for leaked threads and child processes."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

# No "process-fork" variant: Workers(start_method="fork") forks this pytest process from the
# pool's dispatcher thread, i.e. always with threads running (unsafe; Python 3.12+ warns, and
# warnings are errors here). Forks are tested from helper scripts instead (test_fork.py).
BACKENDS = ["thread", "process"]


def child_pids() -> set[int]:
    """Children of this process that exist now, zombies included (an unreaped child is a leak)."""
    pids: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids.update(int(p) for p in (task / "children").read_text().split())
        except FileNotFoundError:  # the thread ended while we looked
            continue
    return pids


def open_fds() -> dict[int, str]:
    """This process's open file descriptors and what each points at."""
    fds: dict[int, str] = {}
    for entry in Path("/proc/self/fd").iterdir():
        try:
            fds[int(entry.name)] = os.readlink(entry)
        except FileNotFoundError:  # the descriptor used to list the directory itself
            continue
    return fds


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail a test that leaves an extra thread, child process or file descriptor behind."""
    threads_before = set(threading.enumerate())
    children_before = child_pids()
    fds_before = open_fds()
    yield
    leaked_threads = [t for t in threading.enumerate() if t not in threads_before]
    leaked_children = child_pids() - children_before
    fds_after = open_fds()
    leaked_fds = {fd: fds_after[fd] for fd in fds_after.keys() - fds_before.keys()}
    problems = []
    if leaked_threads:
        problems.append(f"leaked threads: {[t.name for t in leaked_threads]}")
    if leaked_children:
        problems.append(f"leaked child processes: {sorted(leaked_children)}")
    if leaked_fds:
        problems.append(f"leaked file descriptors: {leaked_fds}")
    if problems:
        pytest.fail("; ".join(problems))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Run one test body on every backend."""
    return str(request.param)
