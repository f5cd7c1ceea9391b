"""Shared fixtures: every test is checked for leaked threads and child processes, and the
whole run for processes that outlive it (a cluster's, wherever they were reparented to)."""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

# No "process-fork" variant: Workers(start_method="fork") forks this pytest process from the
# pool's dispatcher thread, i.e. always with threads running (unsafe; Python 3.12+ warns, and
# warnings are errors here). Forks are tested from helper scripts instead (test_fork.py).
BACKENDS = ["thread", "process"]


def plait_template() -> tuple[int, int] | None:
    """The pid and socket of plait's template process, if it has one: it lives as long as the
    program (a test that starts it leaks nothing), but the workers it forks must not."""
    module = sys.modules.get("plait._backends.process._template")
    template = getattr(module, "_template", None)
    if template is None:
        return None
    return template.pid, template._sock.fileno()


def children_of(pid: int) -> set[int]:
    """Children of ``pid`` that exist now, zombies included (an unreaped child is a leak)."""
    pids: set[int] = set()
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except (FileNotFoundError, ProcessLookupError):  # it ended
        return pids
    for task in tasks:
        try:
            pids.update(int(p) for p in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):  # the thread ended while we looked
            continue
    return pids


def has_exited(pid: int) -> bool:
    """Whether process ``pid`` has ended entirely: gone, or a zombie none of whose threads runs
    (the main thread of a process shows "zombie" while its other threads, which still hold its
    file descriptors, are ending)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        threads = len(list(Path(f"/proc/{pid}/task").iterdir()))
    except (FileNotFoundError, ProcessLookupError):  # gone, possibly while we looked
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X") and threads == 1


def child_pids() -> set[int]:
    """Children of this process, and of the template process in its place."""
    pids = children_of(os.getpid())
    template = plait_template()
    if template is not None and template[0] in pids:
        pids.discard(template[0])
        pids |= children_of(template[0])
    return pids


def open_fds() -> dict[int, str]:
    """This process's open file descriptors and what each points at."""
    fds: dict[int, str] = {}
    for entry in Path("/proc/self/fd").iterdir():
        try:
            fds[int(entry.name)] = os.readlink(entry)
        except FileNotFoundError:  # the descriptor used to list the directory itself
            continue
    template = plait_template()
    if template is not None:
        fds.pop(template[1], None)
    return fds


ABANDONED_GRACE = 10.0


def join_abandoned_threads(threads: list[threading.Thread]) -> None:
    """Give the worker threads plait abandoned (after a task timeout or a terminate) a moment to
    end. Tests abandon only tasks that were told to stop and do (``plait.sleep``), but on a
    busy machine "at once" may come after the pool's shutdown returned, which does not wait for
    abandoned threads: that is what abandoning them means. Any other thread counts at once."""
    deadline = time.monotonic() + ABANDONED_GRACE
    for thread in threads:
        if thread.name.endswith("(abandoned)"):
            thread.join(max(0.0, deadline - time.monotonic()))


# Threads a cluster's client (Dask's) keeps for the whole program once it has used them.
ENGINE_THREADS = ("Dask-", "IO loop", "TCP-Executor")


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves an extra thread, child process or file descriptor behind.

    A test marked ``engine_client`` runs against a cluster whose client (Dask's) outlives it:
    the connections that client's pool keeps open (sockets) and its threads are not the
    test's; every other descriptor, thread and child process still counts."""
    engine = request.node.get_closest_marker("engine_client") is not None
    threads_before = set(threading.enumerate())
    children_before = child_pids()
    fds_before = open_fds()
    yield
    warm = sys.modules.get("plait._backends.process._warm")
    if warm is not None:  # workers kept for the next pool: ended here, and checked to be gone
        warm.discard_all()
    in_hand = sys.modules.get("plait._in_hand")
    if in_hand is not None:  # the watcher of inputs that may wait, kept for the next map
        in_hand.discard()
    spare = sys.modules.get("plait._backends._spare")
    if spare is not None:  # threads kept for the next pool's dispatcher: the same
        spare.discard_all()
    join_abandoned_threads([t for t in threading.enumerate() if t not in threads_before])
    leaked_threads = [t for t in threading.enumerate() if t not in threads_before]
    leaked_children = child_pids() - children_before
    fds_after = open_fds()
    leaked_fds = {fd: fds_after[fd] for fd in fds_after.keys() - fds_before.keys()}
    if engine:
        leaked_threads = [t for t in leaked_threads if not t.name.startswith(ENGINE_THREADS)]
        leaked_fds = {fd: at for fd, at in leaked_fds.items() if not at.startswith("socket:")}
    problems = []
    if leaked_threads:
        problems.append(f"leaked threads: {[t.name for t in leaked_threads]}")
    if leaked_children:
        problems.append(f"leaked child processes: {sorted(leaked_children)}")
    if leaked_fds:
        problems.append(f"leaked file descriptors: {leaked_fds}")
    if problems:
        pytest.fail("; ".join(problems))


# Every process this run starts inherits this variable (a cluster's scheduler, workers and
# their children too): at the end, none may be left, even one reparented away from us.
RUN_MARK = "PLAIT_TEST_RUN"
OUTLIVE_GRACE = 15.0


def pytest_sessionstart(session: pytest.Session) -> None:
    os.environ[RUN_MARK] = uuid.uuid4().hex


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if any process it started (Dask's or Ray's above all) outlives it."""
    mark = os.environ.get(RUN_MARK)
    if mark is None:
        return
    warm = sys.modules.get("plait._backends.process._warm")
    if warm is not None:
        warm.discard_all()
    template = plait_template()
    spared = {os.getpid(), *(() if template is None else (template[0],))}
    deadline = time.monotonic() + OUTLIVE_GRACE
    while True:
        left = [p for p in processes_marked(f"{RUN_MARK}={mark}") if p not in spared]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if left:
        described = [f"{pid}: {command_line(pid)}" for pid in left]
        print(f"\nprocesses this test run started outlived it: {described}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def processes_marked(entry: str) -> list[int]:
    """Live processes (not zombies) whose environment holds ``entry``."""
    found = []
    needle = entry.encode() + b"\0"
    for path in Path("/proc").iterdir():
        if not path.name.isdigit() or has_exited(int(path.name)):
            continue
        try:
            environment = (path / "environ").read_bytes()
        except OSError:  # another user's, or it ended
            continue
        if needle in environment or environment.endswith(needle[:-1]):
            found.append(int(path.name))
    return found


def command_line(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")).decode()[:200]
    except OSError:
        return "?"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Run one test body on every backend."""
    return str(request.param)


@pytest.fixture(params=[*BACKENDS, "async"])
def any_backend(request: pytest.FixtureRequest) -> str:
    """Run one test body on every backend, the async one too: the body passes its functions
    through ``on(any_backend, fn)``, which makes an ``async def`` of them there."""
    return str(request.param)


def on(backend: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` as the backend takes it: itself, or an ``async def`` with its behaviour."""
    if backend != "async":
        return fn

    async def coroutine_fn(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return coroutine_fn


def read_in_a_thread(results: Iterable[Any]) -> tuple[threading.Thread, list[Any]]:
    """A started thread that takes every result of ``results`` into the list it returns, and
    then the exception that ended them, if one did."""
    taken: list[Any] = []

    def read() -> None:
        try:
            taken.extend(results)
        except BaseException as exc:
            taken.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    return reader, taken


def wait_for_file(path: Path) -> None:
    """Until ``path`` exists (a worker process says it got somewhere so); 30 s at most."""
    deadline = time.monotonic() + 30
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)
