"""What every backend is and shares: the ``Backend`` protocol, the default worker count, and
the exit-time cleanup of backends that run processes. A leaf: backends import it, it imports
no backend."""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

from .._cores import process_workers, usable_cores
from .._errors import Cancelled, CancelReason
from .._task import Outcome, failed

if TYPE_CHECKING:
    from .._plan import Plan
    from .._task import Job, Task
    from ._inline import InlineBackend


class Backend(Protocol):
    name: str
    workers: int
    batch_limit: int | None  # the most items a batch may carry (None: no limit of its own)

    def submit(self, task: Task) -> None:
        """Queue a task; raises PoolClosed after shutdown."""

    def release(self, job: Job) -> None:
        """The job will get no more tasks: workers may forget its function."""

    def plan(self, job: Job) -> Plan | None:
        """Where the job's tasks run and why, if the backend chose it (``"auto"``); None when
        the caller did (the backend's name and its workers say it all)."""

    def runs_inline(self, job: Job) -> InlineBackend | None:
        """The inline backend, if the job's tasks run in the consumer's thread (``"auto"``
        chose so): the consumer may then run each item as it takes its result."""

    def watch(self) -> float | None:
        """Called by a consumer as it waits for results, and again after the seconds it
        returns (None: not again): a backend that watches its running work (auto's probe)
        looks at it then, and needs no thread of its own to do so while someone waits."""

    def input_may_block(self) -> None:
        """The consumer is about to read an input that may wait (a generator, a file): a
        backend that counts on it to look at its running work (``watch``) makes sure that
        something else looks meanwhile."""

    def shutdown(self, *, wait: bool, cancel_pending: bool) -> None:
        """Stop taking work; with ``wait``, return once every worker is gone."""

    def terminate(self, *, grace: bool = True) -> None:
        """Stop now: drop pending work, end workers without waiting for running tasks when
        the backend can (processes), and return once they are gone. Running thread tasks are
        told to stop and, with ``grace``, given half a second to do so before their threads
        are abandoned (an explicit ``terminate()``, Ctrl-C on a pool); without it they are
        abandoned at once (a ``plait.map`` stopped early: its consumer goes on at once)."""

    def started(self) -> bool:
        """Whether it has started workers (threads, processes, an event loop) that only a
        shutdown ends."""

    def blocking(self) -> AbstractContextManager[object]:
        """Wrapped around a wait for this backend's own results; a backend whose workers run
        in this process (threads) lets one more worker run meanwhile, so that a task waiting
        on work queued behind it cannot deadlock its pool."""


class Unprobed:
    """The answers of a backend that does not probe its work (every one but ``"auto"``) to
    the scheduler's questions about a probe: nothing runs inline, nothing needs looking at."""

    def runs_inline(self, job: Job) -> InlineBackend | None:
        return None

    def watch(self) -> float | None:
        return None

    def input_may_block(self) -> None:
        return None


def default_workers(backend: str) -> int:
    """Threads wait more than they compute, so more of them than cores pays (the same rule as
    concurrent.futures); processes compute, so one per usable core (``PLAIT_WORKERS`` sets
    that number)."""
    if backend == "thread":
        return min(32, usable_cores() + 4)
    return process_workers()


def terminated() -> BaseException:
    """The error of an item still running when its pool was terminated."""
    return Cancelled(CancelReason.TERMINATED, "the item")


def given_up(task: Task, began: float, where: tuple[str, str]) -> Outcome:
    """The outcome of ``task``, given up by a terminate while it ran on ``where`` since
    ``began`` (``perf_counter()``; 0.0: not known): its items are cancelled, and a trace draws
    it on that worker from its start until now, rather than as a batch no worker ran whose
    running time was spent waiting for one."""
    outcome = failed(len(task.items), terminated, owner_loads=task.owner_loads)
    outcome.where = where
    if began:
        outcome.began, outcome.elapsed = began, time.perf_counter() - began
    return outcome


# Backends with live worker processes. At interpreter exit they are terminated, so a pool or map
# left open does not leave workers running on: threads are daemons and need no such care.
_live: weakref.WeakSet[Backend] = weakref.WeakSet()


_at_exit_last: list[Callable[[], object]] = []  # after every backend ended its workers


def track(backend: Backend) -> None:
    _live.add(backend)


# Backends shut down without waiting (``Pool.shutdown(wait=False)``, a pool collected while its
# calls were queued): as a concurrent.futures Executor's, the work they accepted still ends
# before the program does, whatever ``wait`` said. Weakly held: one whose threads all ended is
# collected and leaves the set. (Not a map's, which is terminated when it is left open.)
_finishing: weakref.WeakSet[Backend] = weakref.WeakSet()


def finish_at_exit(backend: Backend) -> None:
    _finishing.add(backend)


def _finish_at_exit() -> None:
    """At exit, before the interpreter stops daemon threads: wait for the work of backends
    shut down without waiting (Ctrl-C meanwhile: stop them now)."""
    backends = list(_finishing)
    try:
        for backend in backends:
            backend.shutdown(wait=True, cancel_pending=False)
    except BaseException:
        for backend in backends:
            backend.terminate()
        raise


threading._register_atexit(_finish_at_exit)  # type: ignore[attr-defined]


def at_exit_last(callback: Callable[[], object]) -> None:
    """Call ``callback`` at interpreter exit, once every backend has ended its workers."""
    _at_exit_last.append(callback)


@atexit.register
def _terminate_all() -> None:
    for backend in list(_live):
        backend.terminate()
    for callback in _at_exit_last:
        callback()
