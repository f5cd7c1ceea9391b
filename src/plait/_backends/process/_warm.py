"""Warm workers: idle worker processes that a pool which ended hands on to the next one.

A map's workers end with it, and a program that maps again (a notebook's next cell, a loop of
small maps) would start them all again. Instead, a pool that shuts down gracefully parks its
idle, healthy workers here, and the next pool takes them: it sends RESET (the program's
directory and environment, which a task of the last pool may have changed in the worker), INIT,
and its first tasks right behind them; the worker forgets the previous pool's functions, state
and sys.path additions, answers READY and runs them, with no round trip before the first task.

A parked worker has been sent PARK: it waits at most ``WARM_SECONDS`` for its next frame, then
exits by itself, so nothing lingers in an idle program, and the program needs no timer thread.
A pool that takes a worker in the very moment it gives up sees EOF before READY; the worker ran
none of the tasks sent to it, so they go to another worker, unharmed, and a fresh one starts.
Only workers of pools without an initializer or ``max_tasks`` are parked (an initializer's state
belongs to its pool). At interpreter exit, and in a fork of the program, parked workers are let
go.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from contextlib import suppress

from ..._waits import readable
from ..._worker_spec import Workers
from .._base import at_exit_last
from ._frames import Tag, frame
from ._handle import EXIT_WAIT, WorkerHandle

WARM_SECONDS = float(os.environ.get("PLAIT_WARM_SECONDS", "60"))
MARGIN = 1.0  # a worker this close to its own idle limit is not taken: it may be exiting
MAX_PARKED = 2 * (os.cpu_count() or 1)

# (worker, start method and the program's surroundings when it was parked, since when)
_parked: deque[tuple[WorkerHandle, tuple[object, ...], float]] = deque()
_lock = threading.Lock()


def reusable(spec: Workers) -> bool:
    """Whether a pool's workers can be handed on: they have no per-pool setup."""
    return spec.initializer is None and spec.max_tasks is None


def park(worker: WorkerHandle, key: tuple[object, ...]) -> bool:
    """Keep ``worker`` for the next pool; ``key`` is ``surroundings()``, made once for all the
    workers a pool parks. False if it cannot be kept: the caller ends it."""
    if WARM_SECONDS <= 0 or not idle(worker):
        return False
    with _lock:
        if len(_parked) >= MAX_PARKED:
            return False
        (data,) = frame(Tag.PARK, job=max(1, int(WARM_SECONDS)))
        try:  # a few bytes into an idle socket: all of them go at once
            if worker.sock.send(data) != len(data):
                return False  # (a stream cut mid-frame: the caller ends the worker)
        except OSError:
            return False
        _parked.append((worker, key, time.monotonic()))
    return True


def idle(worker: WorkerHandle) -> bool:
    """Set up (its READY read: none is left in flight for the next pool to mistake for its
    own), holding no task, and with no frame half-read or half-written."""
    return (
        worker.ready
        and not worker.unconfirmed
        and not worker.tasks
        and not worker.retiring
        and not worker.writer
        and not worker.writer.closed
        and not worker.reader.closed
        and worker.reader.between_frames
    )


def any_parked() -> bool:
    return bool(_parked)


def surroundings(start_method: str) -> tuple[object, ...]:
    """What a worker takes from the program as it starts, besides its start method: the
    directory, the environment, and where standard output and error go. A parked worker is
    taken only if none of it changed since."""
    streams: list[object] = []
    for fd in (1, 2):
        try:
            stat = os.fstat(fd)
            streams.append((stat.st_dev, stat.st_ino))
        except OSError:
            streams.append(None)
    try:
        cwd: str | None = os.getcwd()
    except OSError:
        cwd = None
    # (os.environ decodes every name and value in Python; the bytes it keeps them as, not.)
    environ = getattr(os.environ, "_data", os.environ)
    return start_method, cwd, hash(frozenset(environ.items())), *streams


def take(key: tuple[object, ...]) -> WorkerHandle | None:
    """A parked worker started in the program's present surroundings (``key``, as made by
    ``surroundings()``), the most recently parked first; None if there is none (or none still
    alive)."""
    while True:
        with _lock:
            found = next((entry for entry in reversed(_parked) if entry[1] == key), None)
            if found is None:
                return None
            _parked.remove(found)
        worker, _, since = found
        if time.monotonic() - since < WARM_SECONDS - MARGIN and not _readable(worker):
            return worker
        end(worker)  # gone (EOF) or about to go


def _readable(worker: WorkerHandle) -> bool:
    """A parked worker sends nothing: anything to read is its EOF."""
    return readable(worker.sock.fileno(), 0)


def end(worker: WorkerHandle) -> None:
    worker.sock.close()  # EOF: it exits
    worker.reap(time.monotonic() + EXIT_WAIT)


def discard_all() -> None:
    """End every parked worker and wait for it (at exit; tests, between cases)."""
    with _lock:
        parked = list(_parked)
        _parked.clear()
    for worker, _, _ in parked:
        worker.sock.close()
    deadline = time.monotonic() + EXIT_WAIT
    for worker, _, _ in parked:
        worker.reap(deadline)


def _forget_in_child() -> None:
    """In a fork of the program: the parked workers are the parent's (their sockets are
    closed by ``_handle``'s own fork hook)."""
    global _lock
    _lock = threading.Lock()
    with suppress(Exception):
        _parked.clear()


os.register_at_fork(after_in_child=_forget_in_child)
at_exit_last(discard_all)
