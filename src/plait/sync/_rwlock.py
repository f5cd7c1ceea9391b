"""RWLock: many readers or one writer, and a waiting writer goes before new readers.

Writers do not starve because a reader that arrives while a writer waits queues behind it.
That rule would deadlock a thread that re-enters a read lock it holds, so readers are tracked
per thread and re-entry is always granted. Upgrading (asking for the write lock while holding a
read lock) can never succeed while another reader waits for the same, so it raises
DeadlockError at once instead of hanging. The writer may take read locks inside its write.

Only a holder releases its side, so an untimed wait for a side held by a thread that has exited
would never end: it raises DeadlockError naming that thread, as an RLock's does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from time import monotonic
from types import TracebackType

from .._waits import repeat
from ._errors import DeadlockError, DeadlockLink
from ._lock import check_wait
from ._owner import Owner, current_owner
from ._registry import RECHECK_INTERVAL
from ._stats import RWLockStatistics, WaitRecorder, base_fields


class _Side:
    """``rw.read()`` / ``rw.write()``: a lock-like view of one side of the RWLock."""

    __slots__ = ("_acquire", "_release")

    def __init__(
        self, acquire: Callable[[bool, float | None], bool], release: Callable[[], None]
    ) -> None:
        self._acquire = acquire
        self._release = release

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        return self._acquire(blocking, timeout)

    def release(self) -> None:
        self._release()

    def __enter__(self) -> bool:
        return self._acquire(True, None)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()


class RWLock:
    """A readers-writer lock: ``with rw.read():`` shares, ``with rw.write():`` excludes."""

    def __init__(self, *, name: str | None = None) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers: dict[Owner, int] = {}  # tokens: thread ids are reused
        self._writer: Owner | None = None
        self._write_depth = 0
        self._writers_waiting = 0
        self._reads = 0
        self._writes = 0
        self._rec = WaitRecorder()
        self.name = name if name is not None else f"RWLock-{id(self):x}"
        self._read_side = _Side(self.acquire_read, self.release_read)
        self._write_side = _Side(self.acquire_write, self.release_write)

    def read(self) -> _Side:
        """The shared side, for ``with rw.read():``."""
        return self._read_side

    def write(self) -> _Side:
        """The exclusive side, for ``with rw.write():``."""
        return self._write_side

    def acquire_read(self, blocking: bool = True, timeout: float | None = None) -> bool:
        me = current_owner()
        with self._cond:
            if me in self._readers or self._writer is me:
                self._readers[me] = self._readers.get(me, 0) + 1
                self._reads += 1
                return True
            ok = self._wait(
                lambda: self._writer is None and self._writers_waiting == 0,
                blocking,
                timeout,
                "read",
            )
            if ok:
                self._readers[me] = 1
                self._reads += 1
            return ok

    def release_read(self) -> None:
        me = current_owner()
        with self._cond:
            depth = self._readers.get(me)
            if depth is None:
                raise RuntimeError("cannot release a read lock this thread does not hold")
            if depth > 1:
                self._readers[me] = depth - 1
                return
            del self._readers[me]
            if not self._readers:
                self._cond.notify_all()

    def acquire_write(self, blocking: bool = True, timeout: float | None = None) -> bool:
        me = current_owner()
        with self._cond:
            if self._writer is me:
                self._write_depth += 1
                self._writes += 1
                return True
            if me in self._readers:
                raise self._upgrade_error(me)
            self._writers_waiting += 1
            try:
                ok = self._wait(
                    lambda: self._writer is None and not self._readers, blocking, timeout, "write"
                )
            finally:
                self._writers_waiting -= 1
                if self._writer is None:
                    self._cond.notify_all()  # readers held back by this writer may go now
            if ok:
                self._writer = me
                self._write_depth = 1
                self._writes += 1
            return ok

    def release_write(self) -> None:
        with self._cond:
            if self._writer is not current_owner():
                raise RuntimeError("cannot release a write lock this thread does not hold")
            self._write_depth -= 1
            if self._write_depth == 0:
                self._writer = None
                self._cond.notify_all()

    def _wait(
        self, ready: Callable[[], bool], blocking: bool, timeout: float | None, side: str
    ) -> bool:
        """Wait, with the condition held, until ``ready()``; account for the wait. Untimed,
        looked at again every ``RECHECK_INTERVAL``: a holder may exit meanwhile."""
        check_wait(timeout)
        if not blocking and timeout is not None:
            raise ValueError("can't specify timeout for non-blocking acquire")
        if ready():
            return True
        if not blocking:
            return False
        self._rec.waiting += 1
        start = monotonic()
        try:
            if timeout is None:
                while not ready():
                    self._check_holders_live(side)
                    self._cond.wait(RECHECK_INTERVAL)
                ok = True
            else:
                ok = repeat(partial(self._cond.wait_for, ready), timeout)
        finally:
            self._rec.waiting -= 1
        self._rec.waited(monotonic() - start, succeeded=ok)
        return ok

    def _check_holders_live(self, side: str) -> None:
        """Raise DeadlockError if a thread that holds the lock (holding the condition) has
        exited: only it could release its side, and it never will."""
        holders = [*self._readers, *([self._writer] if self._writer is not None else [])]
        for holder in holders:
            if holder.alive:
                continue
            held = "the write lock" if holder is self._writer else "a read lock"
            link = DeadlockLink(
                thread=current_owner().name,
                waits_for=f"{self.name} ({side})",
                waits_at=f"acquire_{side}",
                held_by=holder.name,
                held_since=f"{held}, never released",
                holder_exited=True,
            )
            reason = (
                f"{self.name!r} is held by thread {holder.name!r}, which exited without "
                f"releasing {held}"
            )
            raise DeadlockError((link,), reason)

    def _upgrade_error(self, me: Owner) -> DeadlockError:
        name = me.name
        return DeadlockError(
            (
                DeadlockLink(
                    thread=name,
                    waits_for=f"{self.name} (write)",
                    waits_at="acquire_write",
                    held_by=name,
                    held_since="a read lock this thread still holds (release it first)",
                ),
            )
        )

    def statistics(self) -> RWLockStatistics:
        with self._cond:
            fields = base_fields(self.name, self._rec)
            fields["acquisitions"] = self._reads + self._writes
            return RWLockStatistics(
                **fields,  # type: ignore[arg-type]
                readers=sum(self._readers.values()),
                writer=None if self._writer is None else self._writer.name,
                writers_waiting=self._writers_waiting,
                read_acquisitions=self._reads,
                write_acquisitions=self._writes,
            )

    def __repr__(self) -> str:
        return (
            f"<plait.sync.RWLock {self.name!r} readers={len(self._readers)} "
            f"writer={None if self._writer is None else self._writer.describe()!r}>"
        )
