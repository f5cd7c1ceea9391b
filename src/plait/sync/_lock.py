"""Lock and RLock: threading's locks, plus a holder, statistics and deadlock detection.

The uncontended path is one non-blocking acquire of a ``threading.Lock`` and a few slot writes:
the holder's ident and, with detection on, the caller's frame and instruction offset (the line
is only worked out if a report needs it). Everything else — argument checks, lock-order checks,
the wait-for graph, wait timing — lives in ``_acquire_at``, which only a contended, timed or
order-checked acquire reaches. Holders are set after the inner lock is taken and cleared before
it is released, which is what keeps the wait-for graph honest.

With detection off, ``Lock()`` builds an ``_UncheckedLock``: the same class to callers, minus the
holder and frame capture, for code that cannot spare even that.
"""

from __future__ import annotations

import threading
from _thread import get_ident
from functools import partial
from sys import _getframe
from time import monotonic
from types import FrameType, TracebackType

from . import _lockorder as order
from . import _registry as reg
from ._registry import GRAPH_LOCK, RECHECK_INTERVAL, SERIALS, Site, format_site
from ._stats import LockStatistics, WaitRecorder, base_fields


def check_timeout(blocking: bool, timeout: float) -> None:
    """Refuse the arguments ``threading.Lock.acquire`` refuses, with its messages."""
    if not blocking and timeout != -1:
        raise ValueError("can't specify a timeout for a non-blocking call")
    if timeout < 0 and timeout != -1:
        raise ValueError("timeout value must be positive")
    if timeout > threading.TIMEOUT_MAX:
        raise OverflowError("timeout value is too large")


def thread_name(ident: int | None) -> str | None:
    if ident is None:
        return None
    for thread in threading.enumerate():
        if thread.ident == ident:
            return thread.name
    return f"thread-{ident}"


class _TrackedLock:
    """What Lock and RLock share: the contended path, statistics and repr."""

    __slots__ = (
        "__weakref__",
        "_acquired",
        "_count",
        "_detect",
        "_frame",
        "_lasti",
        "_lock",
        "_owner",
        "_rec",
        "_release",
        "_serial",
        "_try",
        "name",
    )

    def __init__(self, *, name: str | None = None, detect: bool | None = None) -> None:
        self._lock = threading.Lock()
        self._try = partial(self._lock.acquire, False)
        self._release = self._lock.release
        self._owner: int | None = None
        self._frame: FrameType | None = None
        self._lasti = 0
        self._count = 0
        self._acquired = 0
        self._detect = reg.DETECT if detect is None else bool(detect)
        self._rec = WaitRecorder()
        self._serial = next(SERIALS)
        self.name = name if name is not None else f"{type(self).__name__}-{self._serial}"

    def held_at(self) -> Site | None:
        frame = self._frame
        return None if frame is None else (frame, self._lasti)

    def _took(self, where: Site | None) -> None:
        self._owner = get_ident()
        self._frame, self._lasti = where if where is not None else (None, 0)
        self._count = 1
        self._acquired += 1
        if reg.ORDER and self._detect:
            order.acquired(self, where)

    def _acquire_at(self, blocking: bool, timeout: float, depth: int) -> bool:
        """Every acquire that is not a plain uncontended one; ``depth`` frames up is the caller."""
        check_timeout(blocking, timeout)
        where = reg.site(depth) if self._detect else None
        if where is not None and blocking and reg.ORDER:
            order.before_acquire(self, where, depth + 1)
        if self._try():
            self._took(where)
            return True
        if not blocking:
            return False
        return self._block(timeout, where)

    def _block(self, timeout: float, where: Site | None) -> bool:
        me = get_ident()
        watch = where is not None and timeout == -1 and reg.DETECT
        start = monotonic()
        with GRAPH_LOCK:
            if watch and where is not None:
                reg.wait_or_raise(self, me, where)
            self._rec.waiting += 1
        got = False
        try:
            if watch:
                while not (got := self._lock.acquire(True, RECHECK_INTERVAL)):
                    with GRAPH_LOCK:
                        if reg.DETECT:
                            reg.recheck(self, me)
            else:
                got = self._lock.acquire(True, timeout)
        finally:
            with GRAPH_LOCK:
                self._rec.waiting -= 1
                self._rec.waited(monotonic() - start, succeeded=got)
                if watch:
                    reg.stop_waiting(me)
                if got:
                    self._took(where)
        return got

    def _drop(self) -> None:
        self._owner = None
        self._frame = None
        self._count = 0
        if reg.ORDER:
            order.released(self)
        self._release()

    def _is_owned(self) -> bool:
        return self._owner == get_ident() and self._lock.locked()

    def locked(self) -> bool:
        """Whether some thread holds the lock (a snapshot: it may change at once)."""
        return self._lock.locked()

    def statistics(self) -> LockStatistics:
        with GRAPH_LOCK:
            owner, held_at, count = self._owner, self.held_at(), self._count
            fields = base_fields(self.name, self._rec)
            fields["acquisitions"] = self._acquired
        locked = self._lock.locked()
        return LockStatistics(
            **fields,  # type: ignore[arg-type]
            locked=locked,
            holder=thread_name(owner) if locked else None,
            held_at=format_site(held_at) if locked and held_at is not None else None,
            recursion=max(count, 1) if locked else 0,
        )

    def __repr__(self) -> str:
        state = "unlocked"
        if self._lock.locked():
            state = f"locked by {thread_name(self._owner)!r}"
        return f"<plait.sync.{type(self).__name__} {self.name!r} {state}>"


class Lock(_TrackedLock):
    """A drop-in ``threading.Lock`` that refuses to deadlock and reports its contention.

    Meant to be released by the thread that took it (as ``with lock:`` does); a lock used as a
    signal between threads should be created with ``detect=False`` or be a Semaphore.
    """

    __slots__ = ()

    def __new__(cls, *, name: str | None = None, detect: bool | None = None) -> Lock:
        if cls is Lock and not (reg.DETECT if detect is None else detect):
            return object.__new__(_UncheckedLock)
        return object.__new__(cls)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if timeout != -1 or reg.ORDER or not self._try():
            return self._acquire_at(blocking, timeout, 2)
        self._frame = frame = _getframe(1)
        self._lasti = frame.f_lasti
        self._owner = get_ident()
        self._acquired += 1
        return True

    def __enter__(self) -> bool:
        if reg.ORDER or not self._try():
            return self._acquire_at(True, -1, 2)
        self._frame = frame = _getframe(1)
        self._lasti = frame.f_lasti
        self._owner = get_ident()
        self._acquired += 1
        return True

    def release(self) -> None:
        self._owner = None
        self._frame = None
        if reg.ORDER:
            order.released(self)
        self._release()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._owner = None
        self._frame = None
        if reg.ORDER:
            order.released(self)
        self._release()

    def _release_save(self) -> None:
        self._drop()

    def _acquire_restore(self, state: object, depth: int = 1) -> None:
        self._acquire_at(True, -1, depth + 1)


class _UncheckedLock(Lock):
    """A Lock built while detection is off (or with ``detect=False``).

    It keeps only the counts: no holder, no frames, no graph, so ``statistics()`` cannot name the
    holder, and ownership checks (Condition's) fall back to threading's "is it locked" answer.
    """

    __slots__ = ()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if timeout != -1 or not self._try():
            return self._acquire_at(blocking, timeout, 2)
        self._acquired += 1
        return True

    def __enter__(self) -> bool:
        if not self._try():
            return self._acquire_at(True, -1, 2)
        self._acquired += 1
        return True

    def release(self) -> None:
        self._release()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()

    def _took(self, where: Site | None) -> None:
        self._acquired += 1

    def _is_owned(self) -> bool:
        return self._lock.locked()


class RLock(_TrackedLock):
    """A drop-in ``threading.RLock``: re-entry by the holder is counted, never a deadlock."""

    __slots__ = ()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._owner == get_ident():
            self._count += 1
            self._acquired += 1
            return True
        return self._acquire_at(blocking, timeout, 2)

    def __enter__(self) -> bool:
        if self._owner == get_ident():
            self._count += 1
            self._acquired += 1
            return True
        return self._acquire_at(True, -1, 2)

    def release(self) -> None:
        if self._owner != get_ident():
            raise RuntimeError("cannot release un-acquired lock")
        self._count -= 1
        if self._count == 0:
            self._drop()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def _acquire_at(self, blocking: bool, timeout: float, depth: int) -> bool:
        if self._owner == get_ident():
            self._count += 1
            self._acquired += 1
            return True
        return super()._acquire_at(blocking, timeout, depth + 1)

    def _release_save(self) -> int:
        """Release every level at once (for Condition.wait); the count comes back on restore."""
        if self._owner != get_ident():
            raise RuntimeError("cannot release un-acquired lock")
        count = self._count
        self._drop()
        return count

    def _acquire_restore(self, state: int, depth: int = 1) -> None:
        super()._acquire_at(True, -1, depth + 1)
        self._count = state
