"""backend="dask": plait's batches as tasks on a Dask cluster (``pip install plait[dask]``).

Where the cluster comes from, in this order: ``Workers(address="tcp://host:8786")``, a
scheduler to connect to; the current ``distributed.Client`` (``distributed.default_client()``);
else a local cluster that this backend starts on its first batch (``_dask_local``: a scheduler
and a worker process per usable core, one thread each, no dashboard) and closes when it shuts
down. The queue, the window and what a dead worker costs are ``_cluster``'s.

What Dask cannot do, and what plait does instead:

- stop a running task: an item with a ``task_timeout`` runs on a thread of its own on the worker,
  which answers TaskTimeout at the deadline; plait then restarts that worker through its nanny,
  which ends the abandoned item (other tasks on that worker are rescheduled by Dask);
- say which item of a batch killed its worker (``KilledWorker``): see ``_cluster``. The cluster
  plait starts does not retry a task that lost its worker (``allowed-failures`` 0); an existing
  cluster retries as it is configured to first.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Hashable
from contextlib import suppress
from typing import Any

from .._worker_spec import Workers
from ._cluster import ClusterBackend, Ended, caller_path
from ._dask_local import LocalDaskCluster
from ._local_cluster import local_workers

EXTRA = "pip install 'plait[dask]'"
RELEASE_WAIT = 10.0  # seconds a restart waits for the scheduler to have an item's release


def import_distributed() -> Any:
    """``distributed``, or an error that says how to install it."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(f"backend='dask' needs Dask's distributed scheduler: {EXTRA}") from exc
    return distributed


class DaskBackend(ClusterBackend):
    name = "dask"
    engine = "Dask"

    def __init__(self, spec: Workers) -> None:
        self._distributed = import_distributed()
        self.spec = spec
        self._connecting = threading.Lock()
        self._client: Any = None
        self._cluster: LocalDaskCluster | None = None  # the one this backend started, if any
        self._owns_client = False
        if spec.address is not None:
            self._client = self._distributed.Client(spec.address, set_as_default=False)
            self._owns_client = True
        else:
            try:
                self._client = self._distributed.default_client()
            except ValueError:  # no client: a cluster of our own, on the first batch
                pass
        if self._client is None:  # a cluster of our own, on this machine: refused if too big
            workers = local_workers(spec.count, self.engine)
        elif spec.count is not None:
            workers = spec.count
        else:
            workers = max(1, sum(self._client.nthreads().values()))
        super().__init__(workers, spec)

    def _owns_connection(self) -> bool:
        return self._owns_client

    def _launch(
        self, function: bytes, items: bytes, kind: int, timeout: float | None, init: bytes | None
    ) -> Any:
        from ._remote import run_batch

        return self._connect().submit(
            run_batch, function, items, kind, timeout, caller_path(), init, pure=False
        )

    def _key(self, handle: Any) -> Hashable:
        key: Hashable = handle.key
        return key

    def _when_done(self, handle: Any) -> None:
        handle.add_done_callback(self._done)

    def _ended(self, handle: Any) -> Ended:
        status = handle.status  # (read once: a worker's death can change it meanwhile)
        if status == "finished":
            return Ended("done", result=handle.result())
        if status == "cancelled":
            return Ended("cancelled")
        if status != "error":  # ("lost", or already being computed again)
            handle.release()
            return Ended("lost")
        exc = handle.exception()
        if isinstance(exc, self._distributed.KilledWorker):
            return Ended("crashed", detail=f"{type(exc).__name__}: {exc}")
        return Ended("failed", error=exc)

    def _cancel(self, handles: list[Any]) -> None:
        # What already runs on a worker of an existing cluster runs on there (Dask cannot
        # stop it); a cluster of ours ends with the disconnect that follows.
        if self._client is not None:
            with suppress(Exception):
                self._client.cancel(handles, force=True)

    def _end_overran(self, handle: Any, where: bool | str) -> None:
        """Restart, through its nanny, the worker that ran the abandoned item (it gave its
        address). (In Dask's callback thread: the results behind it wait the second or two
        that takes.)"""
        client = self._client
        # Released first: a result still wanted when its worker restarts is computed again
        # elsewhere, and the item would hang there, abandoned by no one. A release is a
        # message on the client's batched stream, the restart a call on another connection:
        # the scheduler may hear of the restart first (a CI run saw the item start again on
        # the other worker), so the restart waits until the scheduler has the release.
        key = handle.key
        handle.release()
        if not isinstance(where, str):
            return

        def still_wanted(dask_scheduler: Any) -> bool:
            task = dask_scheduler.tasks.get(key)
            return task is not None and bool(task.who_wants)

        deadline = time.monotonic() + RELEASE_WAIT
        with suppress(Exception):  # (a scheduler that cannot run it: restart at once)
            while client.run_on_scheduler(still_wanted) and time.monotonic() < deadline:
                time.sleep(0.01)
        try:
            client.restart_workers([where], timeout=60)
        except Exception:  # (gone meanwhile, or no nanny to restart it: ended outright)
            with suppress(Exception):  # (bounded: a client whose loop stopped never answers)
                client.run(os._exit, 1, workers=[where], wait=False, callback_timeout=10)

    def _connect(self) -> Any:
        """The client; the first call without one starts a cluster of our own."""
        with self._connecting:
            if self._client is None:
                self._cluster = LocalDaskCluster(self.workers)
                self._client = self._distributed.Client(self._cluster.address, set_as_default=False)
                self._owns_client = True
            return self._client

    def _disconnect(self) -> None:
        with self._connecting:
            client, cluster = self._client, self._cluster
            if self._owns_client and client is not None:
                client.close()
            if cluster is not None:
                cluster.close()
            self._cluster = None
            if self._owns_client:
                self._client = None
