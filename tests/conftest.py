"""Shared fixtures: every test is checked for leaked threads and child processes."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

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


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail a test that leaves an extra thread or child process behind."""
    threads_before = set(threading.enumerate())
    children_before = child_pids()
    yield
    leaked_threads = [t for t in threading.enumerate() if t not in threads_before]
    leaked_children = child_pids() - children_before
    problems = []
    if leaked_threads:
        problems.append(f"leaked threads: {[t.name for t in leaked_threads]}")
    if leaked_children:
        problems.append(f"leaked child processes: {sorted(leaked_children)}")
    if problems:
        pytest.fail("; ".join(problems))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Run one test body on every backend."""
    return str(request.param)
