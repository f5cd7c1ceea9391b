"""What runs on a cluster's worker (Dask's today): one batch, in and out as the bytes a plait
worker process reads and writes.

The function, the items and the result travel in the process backend's own encodings
(``process._codec``), so a cluster gives the same answers as local processes: the user's own
exception with the worker's traceback, an item that would not pickle failing alone, a result
that cannot be rebuilt here failing alone. The engine only carries bytes.

This module is imported by the engine's workers, by reference: plait must be installed where
they run (a ``LocalCluster`` shares this interpreter's environment).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import OrderedDict
from typing import Any

from .._errors import TaskTimeout
from .._retry import Retry
from .._task import Kind, Outcome
from .._worker_spec import Workers, start_worker
from .process._child import Unloadable, run
from .process._codec import decode_function, encode_result, note

FUNCTIONS_KEPT = 16  # a worker keeps this many jobs' functions unpickled

_functions: OrderedDict[bytes, tuple[Any, Retry | None]] = OrderedDict()
_functions_lock = threading.Lock()
_local = threading.local()
_paths_added: set[tuple[str, ...]] = set()


def run_batch(
    function: bytes, items: bytes, kind: int, timeout: float | None, sys_path: tuple[str, ...]
) -> tuple[bool, float, bytes, bool | str]:
    """Run one batch: (clean, elapsed seconds, the DONE payload, whether an item overran
    ``timeout`` and still runs, abandoned, in a thread of this worker: if so, this worker's
    address where the engine gives one (Dask's), else True). ``sys_path`` is the
    caller's: its directories that exist here are added to this worker's, so that the
    caller's own modules import on a cluster on the same machine, as on local processes."""
    if sys_path not in _paths_added:
        with _functions_lock:
            sys.path[:0] = [p for p in sys_path if p not in sys.path and os.path.isdir(p)]
            _paths_added.add(sys_path)
    if not getattr(_local, "started", False):  # plait.worker_state() works in this thread
        start_worker(Workers())
        _local.started = True
    fn, retry = _function(function)
    if timeout is None:
        pieces, clean, elapsed = run(fn, retry, Kind(kind), memoryview(items))
        return bool(clean), elapsed / 1e9, b"".join(pieces), False
    return _run_timed(fn, retry, Kind(kind), items, timeout)


def _function(function: bytes) -> tuple[Any, Retry | None]:
    with _functions_lock:
        found = _functions.get(function)
        if found is not None:
            _functions.move_to_end(function)
            return found
    try:
        loaded = decode_function(memoryview(function))
    except BaseException as exc:
        note(exc, "plait: the function could not be loaded on the cluster's worker")
        return Unloadable(exc), None
    with _functions_lock:
        _functions[function] = loaded
        while len(_functions) > FUNCTIONS_KEPT:
            _functions.popitem(last=False)
    return loaded


def _run_timed(
    fn: Any, retry: Retry | None, kind: Kind, items: bytes, timeout: float
) -> tuple[bool, float, bytes, bool | str]:
    """A timed task (one item): run on a thread of its own, given ``timeout`` seconds from
    the moment its item is loaded; past that, the item fails with TaskTimeout and the thread
    is abandoned (the caller may then restart this worker, which ends it)."""
    answer: list[tuple[list[bytes | memoryview], int, int]] = []
    loaded = threading.Event()

    def target() -> None:
        try:
            answer.append(run(fn, retry, kind, memoryview(items), started=loaded.set))
        finally:
            loaded.set()  # (an item that did not load never started)

    thread = threading.Thread(target=target, name="plait-timed-item", daemon=True)
    thread.start()
    loaded.wait()  # (``run`` sets it once the item is loaded, or returns first on failure)
    began = time.monotonic()
    thread.join(timeout)
    if answer:
        pieces, clean, elapsed = answer[0]
        return bool(clean), elapsed / 1e9, b"".join(pieces), False
    thread.name = "plait-timed-item (abandoned)"
    error = TaskTimeout(
        f"the item ran longer than task_timeout={timeout}s; plait gave up on it",
        timeout=timeout,
    )
    ran_for = time.monotonic() - began
    pieces, _ = encode_result(Outcome([None], {0: error}, ran_for))
    return False, ran_for, b"".join(pieces), _this_worker()


def _this_worker() -> bool | str:
    """This worker's address, for the caller to restart it (Dask's); True elsewhere."""
    distributed = sys.modules.get("distributed")
    if distributed is not None:
        try:
            address: str = distributed.get_worker().address
            return address
        except Exception:  # (not in a Dask worker)
            pass
    return True
