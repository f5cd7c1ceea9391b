"""How workers live: their count, an initializer, recycling, the start method; and the per-worker
state a task can reach. A leaf: backends read a ``Workers``; tasks call ``worker_state()``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from . import _standin
from ._errors import note


@dataclass(frozen=True, slots=True)
class Workers:
    """Workers with more than a count: ``workers=plait.Workers(4, initializer=connect)``.

    ``initializer(*initargs)`` runs once in each worker (each thread, each process) before its
    first task, and again in any replacement worker; it can keep what tasks need in
    ``plait.worker_state()``. If it raises, every task given to that worker fails with its
    exception; if it ends its worker process, after a few such workers in a row the process
    backend starts no more, and the tasks fail with ``WorkerCrashed``. ``max_tasks``
    (processes only) recycles a worker process after it has run that many items, e.g. to
    contain a leak. ``start_method`` (processes only): ``"forkserver"`` (the
    default: forked by a template process that runs no threads, fast and safe), ``"spawn"`` (a
    fresh interpreter per worker) or ``"fork"`` (a copy of this process: unsafe alongside
    threads). ``max_count`` (``backend="auto"`` only): the most threads auto's adaptive width
    may give work that waits (default 256); ``count`` instead fixes the number. ``address``
    (``backend="dask"`` or ``"ray"``): the cluster to run on, e.g. ``"tcp://host:8786"`` (a Dask
    scheduler) or ``"ray://host:10001"``.
    """

    count: int | None = None
    initializer: Callable[..., object] | None = None
    initargs: tuple[Any, ...] = ()
    max_tasks: int | None = None
    start_method: str | None = None
    max_count: int | None = None
    address: str | None = None

    def __post_init__(self) -> None:
        for name in ("count", "max_tasks", "max_count"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError(
                    f"plait.Workers: {name} must be an int >= 1 or None, got {value!r}"
                )
        if self.count is not None and self.max_count is not None:
            raise ValueError(
                "plait.Workers: give count (exactly that many workers) or max_count (at most "
                f"that many, as the work needs), not both; got count={self.count}, "
                f"max_count={self.max_count}"
            )
        if self.initializer is not None and not callable(self.initializer):
            raise TypeError(
                f"plait.Workers: initializer must be callable, got {self.initializer!r}"
            )
        if not isinstance(self.initargs, tuple):
            raise TypeError(f"plait.Workers: initargs must be a tuple, got {self.initargs!r}")
        if self.address is not None and not isinstance(self.address, str):
            raise TypeError(
                "plait.Workers: address must be a string such as 'tcp://host:8786' or "
                f"'ray://host:10001', got {self.address!r}"
            )
        if self.start_method not in (None, "forkserver", "spawn", "fork"):
            raise ValueError(
                "plait.Workers: start_method must be 'forkserver' (the default), 'spawn' or "
                f"'fork', got {self.start_method!r}"
            )

    def check_backend(self, backend: str, where: str) -> None:
        if backend == "auto":  # they apply if it picks processes
            return
        if self.max_count is not None:
            raise ValueError(
                f"{where}: Workers.max_count applies to backend='auto' only (it bounds the "
                f"width auto adapts); with backend={backend!r} give count"
            )
        if self.address is not None and backend not in ("dask", "ray"):
            raise ValueError(f"{where}: Workers.address applies to backend='dask' or 'ray' only")
        if backend == "process":
            return
        for name in ("max_tasks", "start_method"):
            if getattr(self, name) is not None:
                raise ValueError(f"{where}: Workers.{name} applies to backend='process' only")


def as_workers(workers: int | Workers | None) -> Workers:
    return workers if isinstance(workers, Workers) else Workers(workers)


_local = threading.local()


def worker_state() -> dict[str, Any]:
    """A dict private to the worker running the current task (a thread or a process).

    It lives as long as the worker: an initializer can open a connection once and every task
    on that worker reuses it. Outside a plait worker it raises RuntimeError.
    """
    standin = _standin.current()  # (an item run inline, in the consumer's thread)
    state = standin.state if standin is not None else getattr(_local, "state", None)
    if state is None:
        raise RuntimeError(
            "plait.worker_state() is only available inside a task or an initializer running "
            "on a plait worker"
        )
    return state


def start_worker(spec: Workers) -> BaseException | None:
    """Set up this thread as a worker: fresh state, then the initializer. Returns its error."""
    _local.state = {}
    return initialize(spec)


@contextmanager
def working_as(state: dict[str, Any]) -> Iterator[None]:
    """Let this thread stand in for a moment for the worker whose state is ``state`` (a batch
    run inline, in the caller's thread); the thread's own worker state, if any, comes back
    after (the caller may itself be a task of another pool)."""
    saved = getattr(_local, "state", None)
    _local.state = state
    try:
        yield
    finally:
        _local.state = saved


def initialize(spec: Workers) -> BaseException | None:
    """Run the initializer in this thread, now its worker's; returns its error."""
    if spec.initializer is None:
        return None
    try:
        spec.initializer(*spec.initargs)
    except BaseException as exc:
        note(exc, "plait: the worker's initializer failed; its tasks fail with this error")
        return exc
    return None
