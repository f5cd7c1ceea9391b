"""backend="ray": plait's batches as tasks on Ray (``pip install plait[ray]``).

Where Ray comes from, in this order: the Ray this program already runs
(``ray.is_initialized()``); ``Workers(address=...)``, a cluster to connect to (``"ray://host:10001"``,
``"host:6379"`` or ``"auto"``), or ``RAY_ADDRESS`` in the environment; else the cluster that
``ray start`` runs on this machine, if one does (as ``ray.init()`` finds it); else a local Ray
that this backend starts on its first batch (one CPU per usable core, no dashboard) and shuts
down when it shuts down. A Ray this backend did not start is never shut down by it (joined, it
only disconnects). The queue, the
window and what a dead worker costs are ``_cluster``'s.

Ray's own retries are off (``max_retries=0``): plait decides what runs again, the same way on
every backend. A batch whose worker died (``WorkerCrashedError``, or Ray's memory monitor:
``OutOfMemoryError``) runs again item by item. An item with a ``task_timeout`` runs as a task
whose worker process exits after it (``max_calls=1``), on a thread of its own there that answers
TaskTimeout at the deadline: the worker's exit ends the abandoned item. Terminating (Ctrl-C,
``Pool.terminate``) cancels every batch out with ``ray.cancel(force=True)``, which kills the
worker processes running them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Hashable
from contextlib import suppress
from typing import Any, NamedTuple

from .._cores import usable_cores
from .._worker_spec import Workers
from ._cluster import ClusterBackend, Ended, caller_path
from ._local_cluster import local_workers

EXTRA = "pip install 'plait[ray]'"


def import_ray() -> Any:
    """``ray``, or an error that says how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(f"backend='ray' needs Ray: {EXTRA}") from exc
    return ray


class _Handle(NamedTuple):
    ref: Any  # the task's ObjectRef
    future: Any  # a concurrent.futures.Future of its result


class RayBackend(ClusterBackend):
    name = "ray"
    engine = "Ray"

    def __init__(self, spec: Workers) -> None:
        self._ray = import_ray()
        self.spec = spec
        self._connecting = threading.Lock()
        self._started_ray = False  # this backend called ray.init: it shuts Ray down
        self._functions_remote: tuple[Any, Any] | None = None  # (plain, timed)
        if spec.address is not None and not self._ray.is_initialized():
            self._init(address=spec.address)
        if self._starts_ray():  # a Ray of our own, on this machine: refused if too big
            workers = local_workers(spec.count, self.engine)
        elif spec.count is not None:
            workers = spec.count
        elif self._ray.is_initialized():
            workers = max(1, int(self._ray.cluster_resources().get("CPU", 1)))
        else:  # (RAY_ADDRESS: a cluster joined on the first batch)
            workers = usable_cores()
        super().__init__(workers, spec)

    def _starts_ray(self) -> bool:
        """Whether the first batch starts a local Ray of this backend's own (unless ``ray
        start`` runs one on this machine, which ray.init then joins as it is)."""
        return not self._ray.is_initialized() and not os.environ.get("RAY_ADDRESS")

    def _owns_connection(self) -> bool:
        return self._started_ray

    def _launch(
        self, function: bytes, items: bytes, kind: int, timeout: float | None, init: bytes | None
    ) -> Any:
        plain, timed = self._connect()
        remote = plain if timeout is None else timed
        ref = remote.remote(function, items, kind, timeout, caller_path(), init)
        return _Handle(ref, ref.future())

    def _key(self, handle: Any) -> Hashable:
        key: Hashable = handle.ref.binary()
        return key

    def _when_done(self, handle: Any) -> None:
        handle.future.add_done_callback(lambda future: self._done(handle))

    def _ended(self, handle: Any) -> Ended:
        exceptions = self._ray.exceptions
        exc = handle.future.exception()
        if exc is None:
            return Ended("done", result=handle.future.result())
        if isinstance(exc, exceptions.TaskCancelledError):
            return Ended("cancelled")
        if isinstance(exc, exceptions.WorkerCrashedError | exceptions.OutOfMemoryError):
            return Ended("crashed", detail=f"{type(exc).__name__}: {_first_line(exc)}")
        if isinstance(exc, exceptions.ObjectLostError):
            return Ended("lost")
        return Ended("failed", error=exc)

    def _cancel(self, handles: list[Any]) -> None:
        for handle in handles:
            with suppress(Exception):
                self._ray.cancel(handle.ref, force=True)

    def _connect(self) -> tuple[Any, Any]:
        """The remote functions; the first call without a Ray starts or joins one."""
        with self._connecting:
            if not self._ray.is_initialized():
                self._init(address=None)
            if self._functions_remote is None:
                from ._remote import run_batch

                remote = self._ray.remote
                self._functions_remote = (
                    remote(max_retries=0, num_cpus=1)(run_batch),
                    remote(max_retries=0, num_cpus=1, max_calls=1)(run_batch),
                )
            return self._functions_remote

    def _init(self, address: str | None) -> None:
        options: dict[str, Any] = {"configure_logging": False, "log_to_driver": False}
        if address is None and not os.environ.get("RAY_ADDRESS"):  # a local Ray of our own
            local = {"num_cpus": self.workers, "include_dashboard": False}
            try:
                self._ray.init(address=None, **options, **local)
            except ValueError as exc:
                # A cluster that `ray start` runs on this machine, which ray.init() joins, as
                # every Ray program does: it is sized already, and refuses a size.
                if "existing cluster" not in str(exc):
                    raise
                self._ray.init(address=None, **options)
        else:
            self._ray.init(address=address, **options)
        self._started_ray = True

    def _disconnect(self) -> None:
        with self._connecting:
            if self._started_ray:
                self._ray.shutdown()
                self._started_ray = False
                self._functions_remote = None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]
