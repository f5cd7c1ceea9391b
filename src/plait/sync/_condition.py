"""Condition: threading's condition variable over any lock, plait's own RLock by default.

While a thread waits it holds nothing: the lock is released in full (every RLock level) before
the wait and taken back through the lock's ordinary acquire afterwards. So a waiter never looks
like a holder in the wait-for graph, and taking the lock back is checked like any other wait.

A condition's lock is released only by its holder (wait and notify need it held), so acquiring a
plain plait Lock through the condition is ``bound``: if the holder is this thread or has exited,
the wait could never end and raises DeadlockError naming the holder, as an RLock's would.
"""

from __future__ import annotations

import warnings
from _thread import allocate_lock
from collections import deque
from collections.abc import Callable
from time import monotonic
from types import TracebackType
from typing import Any, Protocol, TypeVar

from .._waits import acquire
from ._lock import RLock, _TrackedLock
from ._stats import ConditionStatistics, WaitRecorder, base_fields

T = TypeVar("T")


class LockLike(Protocol):
    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...
    def release(self) -> None: ...


class Condition:
    """A drop-in ``threading.Condition``; ``lock`` may be a plait or a threading lock."""

    def __init__(self, lock: LockLike | None = None, *, name: str | None = None) -> None:
        self._lock: Any = RLock(name=f"{name}.lock" if name else None) if lock is None else lock
        self._tracked = isinstance(self._lock, _TrackedLock)
        self._waiters: deque[Any] = deque()
        self._rec = WaitRecorder()
        # Guards the waiters and the counters: a wait that cannot take the lock back (a
        # DeadlockError) still has to take itself off the queue, without the lock.
        self._books = allocate_lock()
        self._notifications = 0
        self.name = name if name is not None else f"Condition-{id(self):x}"

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._tracked:
            return bool(self._lock._acquire_at(blocking, timeout, 2, True))
        return bool(self._lock.acquire(blocking, timeout))

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        if self._tracked:
            return bool(self._lock._acquire_at(True, -1, 2, True))
        return bool(self._lock.__enter__())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # A wait() that could not take the lock back (a DeadlockError: its holder exited)
        # leaves it unheld: releasing it would raise RuntimeError, hiding that error.
        if exc is not None and not self._is_owned():
            return
        self._lock.release()

    def _is_owned(self) -> bool:
        if hasattr(self._lock, "_is_owned"):
            return bool(self._lock._is_owned())
        if self._lock.acquire(False):  # a plain threading.Lock: owned means "locked by someone"
            self._lock.release()
            return False
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Release the lock, wait for a notify (or the timeout), take the lock back."""
        if not self._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        waiter = allocate_lock()
        waiter.acquire()
        with self._books:
            self._waiters.append(waiter)
            self._rec.waiting += 1
        start = monotonic()
        saved = None
        if hasattr(self._lock, "_release_save"):
            saved = self._lock._release_save()
        else:
            self._lock.release()
        notified = False
        try:
            if timeout is None:
                notified = waiter.acquire()
            elif timeout > 0:
                notified = acquire(waiter, timeout)  # (of any length: see ``_waits``)
            else:
                notified = waiter.acquire(False)
            return notified
        finally:
            try:
                self._restore(saved)
            finally:
                # Whatever taking the lock back raised: a timed-out waiter left queued would
                # take the next notify() for itself, and a live waiter would wait on.
                self._unqueue(waiter, notified, monotonic() - start)

    def _unqueue(self, waiter: Any, notified: bool, waited: float) -> None:
        """Undo what wait() queued, and count the wait."""
        with self._books:
            if not notified:
                try:
                    self._waiters.remove(waiter)
                except ValueError:  # a notify() took it off as it timed out
                    pass
            self._rec.waiting -= 1
            self._rec.waited(waited, succeeded=notified)
            if notified:
                self._rec.acquisitions += 1

    def _restore(self, saved: Any) -> None:
        if self._tracked:
            self._lock._acquire_restore(saved, 3)
        elif hasattr(self._lock, "_acquire_restore"):
            self._lock._acquire_restore(saved)
        else:
            self._lock.acquire()

    def wait_for(self, predicate: Callable[[], T], timeout: float | None = None) -> T:
        """Wait until ``predicate()`` is true, or the timeout ends; return its last value."""
        deadline = None
        waittime = timeout
        result = predicate()
        while not result:
            if waittime is not None:
                if deadline is None:
                    deadline = monotonic() + waittime
                else:
                    waittime = deadline - monotonic()
                    if waittime <= 0:
                        break
            self.wait(waittime)
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        """Wake up to ``n`` waiters; they run once they get the lock back."""
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        with self._books:
            while self._waiters and n > 0:
                waiter = self._waiters.popleft()
                try:
                    waiter.release()
                except RuntimeError:  # pragma: no cover - it timed out and was released already
                    continue
                self._notifications += 1
                n -= 1

    def notify_all(self) -> None:
        self.notify(len(self._waiters))

    def notifyAll(self) -> None:
        """Deprecated alias of notify_all(), warning as threading's does."""
        warnings.warn(
            "notifyAll() is deprecated, use notify_all() instead", DeprecationWarning, stacklevel=2
        )
        self.notify_all()

    def statistics(self) -> ConditionStatistics:
        """A snapshot; the counters only change under the condition's bookkeeping lock."""
        with self._books:
            fields = base_fields(self.name, self._rec)
            notifications = self._notifications
        return ConditionStatistics(**fields, notifications=notifications)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return (
            f"<plait.sync.Condition {self.name!r} ({self._lock!r}, {len(self._waiters)} waiting)>"
        )
