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
import pickle
import socket
import sys
import threading
import time
from collections import OrderedDict
from typing import Any

from .._errors import TaskTimeout, note
from .._retry import Retry
from .._task import Kind, Outcome
from .._waits import repeat
from .._worker_spec import Workers, initialize, working_as
from .process._child import Unloadable, run
from .process._codec import decode_function, encode_result

FUNCTIONS_KEPT = 16  # a worker keeps this many jobs' functions unpickled
WORKERS_KEPT = 16  # an engine's thread stands for this many pools' workers (their state)

# What run_batch answers: (clean, elapsed seconds, the DONE payload, whether an item overran
# and still runs (where), and where the batch ran: (this worker, this thread), for a trace).
Answer = tuple[int, float, bytes, bool | str, tuple[str, str]]

_functions: OrderedDict[bytes, tuple[Any, Retry | None]] = OrderedDict()
_functions_lock = threading.Lock()
_local = threading.local()
_paths_added: set[tuple[str, ...]] = set()


def run_batch(
    function: bytes,
    items: bytes,
    kind: int,
    timeout: float | None,
    sys_path: tuple[str, ...],
    init: bytes | None = None,
) -> Answer:
    """Run one batch: (its kind, ``CLEAN``, ``UNREAD`` or 0, as a DONE frame's; elapsed
    seconds, the DONE payload, whether an item overran
    ``timeout`` and still runs, abandoned, in a thread of this worker: if so, this worker's
    address where the engine gives one (Dask's), else True; and where it ran, for a trace:
    this worker and this thread's name). ``sys_path`` is the
    caller's: its directories that exist here are added to this worker's, so that the
    caller's own modules import on a cluster on the same machine, as on local processes.
    ``init``: the pool's initializer (``encode_initializer``), or None."""
    if sys_path not in _paths_added:
        with _functions_lock:
            sys.path[:0] = [p for p in sys_path if p not in sys.path and os.path.isdir(p)]
            _paths_added.add(sys_path)
    state, init_error = _worker(init)
    fn, retry = (Unloadable(init_error), None) if init_error else _function(function)
    with working_as(state):  # plait.worker_state() is this worker's
        if timeout is None:
            pieces, clean, elapsed = run(fn, retry, Kind(kind), memoryview(items))
            return clean, elapsed / 1e9, b"".join(pieces), False, _where()
        return _run_timed(fn, retry, Kind(kind), items, timeout, state)


def encode_initializer(spec: Workers) -> bytes | None:
    """A pool's initializer and its arguments, as ``run_batch`` takes them (None: none).
    With a token of the pool's own: each pool's workers are its own, and a second pool with
    the same initializer runs it again, with fresh state, as it would on threads."""
    from .process._codec import pickle_for_worker

    if spec.initializer is None:
        return None
    token = os.urandom(16)
    return pickle_for_worker((token, Workers(initializer=spec.initializer, initargs=spec.initargs)))


def _worker(init: bytes | None) -> tuple[dict[str, Any], BaseException | None]:
    """The plait worker this engine thread stands for, for the pools whose initializer is
    ``init``: its state (``plait.worker_state()``) and the initializer's error. As on
    threads, each thread that runs batches is a worker: the initializer runs in it once,
    before its first batch of such a pool, and its error fails every batch there after."""
    workers: OrderedDict[bytes | None, tuple[dict[str, Any], BaseException | None]] | None
    workers = getattr(_local, "workers", None)
    if workers is None:
        workers = _local.workers = OrderedDict()
    found = workers.get(init)
    if found is not None:
        workers.move_to_end(init)
        return found
    state: dict[str, Any] = {}
    error: BaseException | None = None
    if init is not None:
        try:
            _, spec = pickle.loads(init)
        except BaseException as exc:
            note(exc, "plait: the worker's initializer could not be loaded on the cluster's worker")
            error = exc
        else:
            with working_as(state):
                error = initialize(spec)
    found = workers[init] = (state, error)
    while len(workers) > WORKERS_KEPT:
        workers.popitem(last=False)
    return found


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
    fn: Any, retry: Retry | None, kind: Kind, items: bytes, timeout: float, state: dict[str, Any]
) -> Answer:
    """A timed task (one item): run on a thread of its own (standing for the worker whose
    ``state`` it is), given ``timeout`` seconds from the moment its item is loaded; past
    that, the item fails with TaskTimeout and the thread is abandoned (the caller may then
    restart this worker, which ends it)."""
    answer: list[tuple[list[bytes | memoryview], int, int]] = []
    loaded = threading.Event()

    def target() -> None:
        try:
            with working_as(state):
                answer.append(run(fn, retry, kind, memoryview(items), started=loaded.set))
        finally:
            loaded.set()  # (an item that did not load never started)

    thread = threading.Thread(target=target, name="plait-timed-item", daemon=True)
    thread.start()
    loaded.wait()  # (``run`` sets it once the item is loaded, or returns first on failure)
    began = time.monotonic()

    def ended_within(seconds: float | None) -> bool:
        thread.join(seconds)
        return not thread.is_alive()

    repeat(ended_within, timeout)  # (a task_timeout past 1e10 s raised in Thread.join)
    if answer:
        pieces, clean, elapsed = answer[0]
        return clean, elapsed / 1e9, b"".join(pieces), False, _where()
    thread.name = "plait-timed-item (abandoned)"
    error = TaskTimeout(
        f"the item ran longer than task_timeout={timeout}s; plait gave up on it",
        timeout=timeout,
    )
    ran_for = time.monotonic() - began
    pieces, _ = encode_result(Outcome([None], {0: error}, ran_for))
    return 0, ran_for, b"".join(pieces), _this_worker(), _where()


def _where() -> tuple[str, str]:
    """This worker (its engine's address for it, or its host and pid) and this thread."""
    place: str | None = getattr(_local, "place", None)
    if place is None:
        address = _this_worker()
        if isinstance(address, str):
            place = f"Dask worker {address}"
        else:
            engine = "Ray worker" if "ray" in sys.modules else "worker"
            place = f"{engine} {socket.gethostname()} pid {os.getpid()}"
        _local.place = place
    return place, threading.current_thread().name


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
