"""How long a thread waited for a core: the machine was busy, the thread itself was not waiting.

Linux counts, per thread, the time it spent runnable but not running (the second field of
``/proc/<pid>/task/<tid>/schedstat``, in nanoseconds). ``backend="auto"`` takes it out of what it
measures: on a machine so busy that computing work gets a quarter of a core, the work still
computes whenever it runs, and must not look like work that waits for I/O or for the GIL.
Elsewhere (another OS, a /proc that cannot be read, a kernel that does not count it) it is 0,
and the measurements are the raw ones.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

_OWN = "/proc/thread-self/schedstat"
_COUNTED = os.path.exists(_OWN)


def waited_for_cpu(native_id: int | None = None) -> float:
    """Seconds the thread (this one, or the one with ``threading.get_native_id()`` equal to
    ``native_id``, of this process) has spent ready to run while no core ran it, since it
    started; 0.0 where that is not counted or the thread has ended. (About 10 µs a call; it
    lets go of the GIL while it reads: see ``read_clocks`` for readings that must not.)"""
    if not _COUNTED:
        return 0.0
    try:
        fd = os.open(_path(native_id), os.O_RDONLY)
        try:
            data = os.read(fd, 256)
        finally:
            os.close(fd)
        return int(data.split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


class Clocks(NamedTuple):
    """A thread's clocks at one moment: ``perf_counter()``, its CPU time, its wait for a core."""

    wall: float
    cpu: float
    waited: float


def waited_between(start: Clocks, stop: Clocks, *, wall: float | None = None) -> float:
    """The seconds the thread waited for a core between two readings of its clocks, at most
    the time it did not run (``wall``: the time between them, if not theirs). Linux adds a
    wait to the count when the wait ends, and a virtual machine's can add it later still: the
    second reading can hold some of a wait that ended before the first."""
    if wall is None:
        wall = stop.wall - start.wall
    not_running = wall - (stop.cpu - start.cpu)
    return max(0.0, min(stop.waited - start.waited, not_running))


class Thread(NamedTuple):
    """What another thread needs to read this one's clocks."""

    native_id: int
    cpu_clock: int | None  # (None where another thread's CPU clock cannot be read)


def this_thread() -> Thread:
    try:
        clock: int | None = time.pthread_getcpuclockid(threading.get_ident())
    except (AttributeError, OSError):
        clock = None
    return Thread(threading.get_native_id(), clock)


def read_clocks(thread: Thread | None = None) -> Clocks | None:
    """The clocks of this thread, or of ``thread`` (None if they cannot be read), read without
    letting go of the GIL. (A thread that lets go of it, beside one that computes holding it,
    gets it back only after waiting its turn, and for a core after that: time that a reading
    taken after it would count, though it was not the measured work's.) The first reading of
    this thread's own loads ctypes, a few milliseconds."""
    if thread is None:
        read_waited = _read_waited or _load_reader()
        return Clocks(time.perf_counter(), time.thread_time(), read_waited(None))
    if thread.cpu_clock is None:
        return None
    # (Also without letting go of the GIL: a reading that lets go of it three times, beside
    # the thread it reads computing, takes the GIL from that thread three times, and on a busy
    # machine each time costs it a wait for a core of the reader's: then looking at the thread
    # every few milliseconds kept it from computing most of the time, and work that computes
    # looked as if it waited.)
    wall = time.perf_counter()
    try:
        cpu = time.clock_gettime(thread.cpu_clock)
    except OSError:  # (it ended)
        return None
    return Clocks(wall, cpu, waited_for_cpu_holding_gil(thread.native_id))


def waited_for_cpu_holding_gil(native_id: int | None = None) -> float:
    """``waited_for_cpu``, read without letting go of the GIL (see ``read_clocks``)."""
    return (_read_waited or _load_reader())(native_id)


_read_waited: Callable[[int | None], float] | None = None


def _path(native_id: int | None) -> str:
    return _OWN if native_id is None else f"/proc/self/task/{native_id}/schedstat"


def _load_reader() -> Callable[[int | None], float]:
    """``waited_for_cpu`` through libc called with the GIL held; the plain one where ctypes or
    the count is missing."""
    global _read_waited
    _read_waited = waited_for_cpu
    if not _COUNTED:
        return waited_for_cpu
    try:
        import ctypes

        libc = ctypes.PyDLL(None)  # (PyDLL: its calls keep the GIL)
        open_, read, close = libc.open, libc.read, libc.close
    except (ImportError, OSError, AttributeError):
        return waited_for_cpu
    open_.argtypes, open_.restype = [ctypes.c_char_p, ctypes.c_int], ctypes.c_int
    read.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
    read.restype = ctypes.c_ssize_t
    close.argtypes, close.restype = [ctypes.c_int], ctypes.c_int
    flags = os.O_RDONLY | os.O_CLOEXEC

    def read_waited(native_id: int | None) -> float:
        buffer = ctypes.create_string_buffer(256)
        fd = open_(_path(native_id).encode(), flags)
        if fd < 0:
            return 0.0
        try:
            size = read(fd, buffer, 256)
        finally:
            close(fd)
        try:
            return int(buffer.raw[: max(size, 0)].split()[1]) / 1e9
        except (ValueError, IndexError):
            return 0.0

    _read_waited = read_waited
    return read_waited
