"""``rate=`` on a map: the function is called at most that many times a second.

The limit wraps the function, so it holds wherever the function runs, and every worker takes
its slots from one token bucket of burst 1 (slots ``1 / rate`` seconds apart):

- threads share a ``plait.sync.RateLimiter``; an async function awaits its slot;
- processes (and the workers of a Dask or Ray cluster on this machine) share a bucket kept in
  a file of the map's (in /dev/shm where there is one): one number, the time of its next free
  slot on the machine's monotonic clock, read and moved on under an flock. A worker that is
  recycled, restarted or killed leaves it as it was, so its successor cannot start a burst.

    map (parent)                          file: next free slot       worker processes
    ────────────                          ────────────────────       ────────────────
    rate_limited() ─ creates ───────────► 0.0 (the bucket is full)
    fn travels (pickled: the path) ─────────────────────────────────► opens the file
                                          flock, read, write ◄─────── each call: its slot,
                                          next + 1 / rate             then sleeps until it
    the job is collected ─ unlinks it

A cluster's worker on another machine cannot see the file: it takes an equal share of the rate
(the rate over the cluster's threads when the map began) from a bucket of its own that starts
empty, so that a worker started later (a restart, a new process) cannot start with a burst.
"""

from __future__ import annotations

import asyncio
import os
import struct
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from contextlib import suppress
from typing import Any, Protocol

from . import _item_clock, _waits

SLOT = struct.Struct("d")  # the file's one number: the next free slot, time.monotonic()
SHARED_DIR = "/dev/shm"  # in memory, and never seen by another machine (where it exists)
PREFIX = "plait-rate-"  # then the pid of the program whose map it is


def folder() -> str:
    """Where shared buckets are kept."""
    return SHARED_DIR if os.access(SHARED_DIR, os.W_OK) else tempfile.gettempdir()


class Bucket(Protocol):
    def acquire(self) -> object: ...


class RateLimited:
    """``fn``, rate-limited by ``bucket``: by default a ``plait.sync.RateLimiter``, which its
    threads share (it does not travel: processes share a ``SharedBucket`` instead)."""

    def __init__(self, fn: Callable[..., Any], rate: float, bucket: Bucket | None = None) -> None:
        if bucket is None:
            from .sync import RateLimiter

            bucket = RateLimiter(rate)
        self.fn = fn
        self.rate = rate
        self._limiter = bucket

    # A process worker starts a timed item's clock only once its slot came (``_item_clock``).
    waits_for_slots = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        _item_clock.pause()  # (the wait for the slot is none of a task_timeout's time)
        self._limiter.acquire()
        _item_clock.restart()
        return self.fn(*args, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:  # (a bucket of one process does not travel)
        raise TypeError("plait: a rate limit kept by threads cannot be sent to a process")


class AsyncRateLimited:
    """An async ``fn``, rate-limited: it awaits its slot instead of blocking the event loop."""

    def __init__(self, fn: Callable[..., Any], rate: float) -> None:
        from .sync import RateLimiter

        self.fn = fn
        self.rate = rate
        self._limiter = RateLimiter(rate)

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        _item_clock.pause_async()
        await asyncio.sleep(self._limiter.reserve())
        _item_clock.restart_async()
        return await self.fn(*args, **kwargs)


class SharedBucket:
    """A token bucket of burst 1 that the processes of this machine share through the file at
    ``path`` (made by ``create``): each ``acquire`` takes the next free slot under an flock and
    sleeps until it, so slots are never nearer than ``1 / rate``, whoever takes them."""

    def __init__(self, path: str, rate: float) -> None:
        self.path = path
        self._interval = 1.0 / rate
        # An flock belongs to the open file, which this process's threads share: they take
        # turns on this lock first.
        self._lock = threading.Lock()
        self._fd: int | None = None

    @classmethod
    def create(cls, rate: float) -> SharedBucket:
        """A new bucket, full, in a file that is removed once the bucket is collected."""
        _remove_orphans()
        fd, path = tempfile.mkstemp(prefix=f"{PREFIX}{os.getpid()}-", dir=folder())
        try:
            os.write(fd, SLOT.pack(0.0))
        finally:
            os.close(fd)
        bucket = cls(path, rate)
        weakref.finalize(bucket, _remove, path)
        return bucket

    def open(self) -> None:
        """Open the file; FileNotFoundError on another machine (or once the map ended)."""
        fd = os.open(self.path, os.O_RDWR)
        self._fd = fd
        weakref.finalize(self, os.close, fd)

    def acquire(self) -> None:
        import fcntl  # (POSIX: imported only where a bucket is shared)

        with self._lock:
            if self._fd is None:
                self.open()
            fd = self._fd
            assert fd is not None
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                now = time.monotonic()
                (free,) = SLOT.unpack(os.pread(fd, SLOT.size, 0))
                slot = max(free, now)
                os.pwrite(fd, SLOT.pack(slot + self._interval), 0)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        if slot > now:
            _waits.sleep(slot - now)  # (rate=1e-10: 1e10 s, past what time.sleep takes)


class SharedRateLimited(RateLimited):
    """``fn``, rate-limited by a ``SharedBucket``; pickled, it takes the path along, and a
    worker that cannot open it (on another machine) falls back to its share of the rate."""

    def __init__(self, fn: Callable[..., Any], rate: float, share: float) -> None:
        self.share = share
        self._bucket = SharedBucket.create(rate)
        super().__init__(fn, rate, self._bucket)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_attach, (self.fn, self.rate, self._bucket.path, self.share))


def _attach(fn: Callable[..., Any], rate: float, path: str, share: float) -> RateLimited:
    """In a worker: ``fn`` behind the map's shared bucket, or, where its file is not to be
    found, behind a bucket of its own for ``share`` calls a second that starts empty."""
    bucket = SharedBucket(path, rate)
    try:
        bucket.open()
    except FileNotFoundError:
        from .sync import RateLimiter

        own = RateLimiter(share)
        own.try_acquire()  # (its first token taken: it starts empty)
        return RateLimited(fn, share, own)
    return RateLimited(fn, rate, bucket)


def _remove(path: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)


def _remove_orphans() -> None:
    """Remove the bucket files of programs that ended without removing theirs (killed with
    SIGKILL, or by the OOM killer): this user's, whose process is gone. (A file's name holds
    the pid of the program it is the map of; a pid another program took since keeps it.)"""
    try:
        names = os.listdir(folder())
    except OSError:
        return
    me = os.getuid()
    for name in names:
        pid = name.removeprefix(PREFIX).partition("-")[0]
        if not name.startswith(PREFIX) or not pid.isdigit() or _alive(int(pid)):
            continue
        path = os.path.join(folder(), name)
        with suppress(OSError):
            if os.stat(path).st_uid == me:
                os.unlink(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # (another user's: alive)
        return True
    return True


def rate_limited(fn: Callable[..., Any], rate: float, backend: str, workers: int) -> Any:
    if backend == "async":
        return AsyncRateLimited(fn, rate)
    if backend in ("process", "dask", "ray"):
        return SharedRateLimited(fn, rate, share=rate / workers)
    return RateLimited(fn, rate)
