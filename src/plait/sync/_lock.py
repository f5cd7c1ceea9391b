"""Lock and RLock: threading's locks, plus a holder, statistics and deadlock detection.

The uncontended path is one non-blocking acquire of a ``threading.Lock`` and a few slot writes:
the holder's Owner token (see ``_owner``: thread ids are reused, tokens are not) and, with
detection on, the caller's frame and instruction offset (the line is only worked out if a report
needs it). Everything else — argument checks, lock-order checks,
the wait-for graph, wait timing — lives in ``_acquire_at``, which only a contended, timed or
order-checked acquire reaches. Holders are set after the inner lock is taken and cleared before
it is released, which is what keeps the wait-for graph honest.

A wait only another thread's release can end (the holder is the waiter itself, or has exited)
raises DeadlockError where only the holder may release: RLock, a Condition's lock (``bound``),
``Lock(strict=True)``. A plain Lock keeps threading's semantics, as CPython's own lock tests
expect, and warns with StuckLockWarning once the wait passes ``warn_after`` seconds
(``STUCK_WAIT_GRACE`` by default).

With detection off, ``Lock()`` builds an ``_UncheckedLock``: the same class to callers, minus the
holder and frame capture, for code that cannot spare even that.
"""

from __future__ import annotations

import math
import threading
import warnings
from functools import partial
from sys import _getframe
from time import monotonic
from types import FrameType, TracebackType

from . import _lockorder as order
from . import _registry as reg
from ._errors import StuckLockWarning
from ._owner import LOCAL, Owner, current_owner
from ._registry import GRAPH_LOCK, RECHECK_INTERVAL, SERIALS, Site, format_site
from ._stats import LockStatistics, WaitRecorder, base_fields

STUCK_WAIT_GRACE = 5.0
"""Seconds a plain Lock wait that only another thread can end (the holder is the waiter itself,
or has exited) may last before StuckLockWarning; ``Lock(warn_after=...)`` overrides it per lock.
Read at each wait, so changing it affects locks that exist already."""


def check_timeout(blocking: bool, timeout: float) -> None:
    """Refuse the arguments ``threading.Lock.acquire`` refuses, with its messages."""
    if timeout != timeout:  # NaN: no deadline would ever compare as passed
        raise ValueError("Invalid value NaN (not a number)")
    if not blocking and timeout != -1:
        raise ValueError("can't specify a timeout for a non-blocking call")
    if timeout < 0 and timeout != -1:
        raise ValueError("timeout value must be positive")
    if timeout > threading.TIMEOUT_MAX:
        raise OverflowError("timeout value is too large")


def check_wait(timeout: float | None) -> None:
    """Refuse a wait's timeout that no clock can reach: NaN (a wait for it spun at full CPU
    for ever: no deadline compares as passed) or infinity."""
    if timeout is not None and not math.isfinite(timeout):
        raise ValueError(
            f"timeout must be a finite number of seconds, got {timeout!r}; "
            "use None to wait without a limit"
        )


def check_warn_after(warn_after: float | None) -> None:
    if warn_after is not None and not (warn_after >= 0 and math.isfinite(warn_after)):
        raise ValueError(
            f"warn_after must be a finite number of seconds >= 0 (or None for the default "
            f"STUCK_WAIT_GRACE), got {warn_after!r}"
        )


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
        "_strict",
        "_try",
        "_warn_after",
        "name",
    )

    _public_name = "Lock"

    def __init__(
        self,
        *,
        name: str | None = None,
        detect: bool | None = None,
        strict: bool = False,
        warn_after: float | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._try = partial(self._lock.acquire, False)
        self._release = self._lock.release
        self._owner: Owner | None = None
        self._strict = strict
        self._warn_after = warn_after
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
        self._owner = current_owner()
        self._frame, self._lasti = where if where is not None else (None, 0)
        self._count = 1
        self._acquired += 1
        if reg.ORDER and self._detect:
            order.acquired(self, where)

    def _acquire_at(self, blocking: bool, timeout: float, depth: int, bound: bool = False) -> bool:
        """Every acquire that is not a plain uncontended one; ``depth`` frames up is the caller.

        ``bound``: the caller (a Condition) lets only the holder release the lock.
        """
        check_timeout(blocking, timeout)
        where = reg.site(depth) if self._detect else None
        if where is not None and blocking and reg.ORDER:
            order.before_acquire(self, where, depth + 1)
        if self._try():
            self._took(where)
            return True
        if not blocking:
            return False
        return self._block(timeout, where, bound or self._strict, depth + 1)

    def _block(self, timeout: float, where: Site | None, refuse: bool, depth: int) -> bool:
        me = current_owner()
        watch = where is not None and timeout == -1 and reg.DETECT
        start = monotonic()
        with GRAPH_LOCK:
            if watch and where is not None:
                reg.wait_or_raise(self, me, where, refuse)
            self._rec.waiting += 1
        got = False
        try:
            if watch and where is not None:
                got = self._watch(me, where, refuse, start, depth + 1)
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

    def _watch(self, me: Owner, where: Site, refuse: bool, start: float, depth: int) -> bool:
        """Block, re-checking the graph now and then; warn once if only others can end the wait."""
        grace = STUCK_WAIT_GRACE if self._warn_after is None else self._warn_after
        warn_at = None if refuse else start + grace
        while True:
            interval = RECHECK_INTERVAL
            if warn_at is not None:
                interval = min(interval, max(warn_at - monotonic(), 0.0))
            if self._lock.acquire(True, interval):
                return True
            stuck = None
            with GRAPH_LOCK:
                if reg.DETECT:
                    reg.recheck(self, me, refuse)
                    if warn_at is not None and monotonic() >= warn_at:
                        stuck = reg.stuck_holder(self, me)
            if stuck is not None:
                # The holder may have released the lock (and exited) since we looked: the fast
                # release does not take GRAPH_LOCK. Take the lock if it is free now; otherwise
                # look again at whoever holds it at this moment.
                if self._lock.acquire(False):
                    return True
                with GRAPH_LOCK:
                    stuck = reg.stuck_holder(self, me)
            if stuck is not None:
                warn_at = None  # once per wait
                message = reg.stuck_message(self, me, where, stuck, monotonic() - start)
                # outside GRAPH_LOCK: a filter may turn the warning into an exception
                warnings.warn(message, StuckLockWarning, stacklevel=depth + 1)

    def _drop(self) -> None:
        self._owner = None
        self._frame = None
        self._count = 0
        if reg.ORDER:
            order.released(self)
        self._release()

    def _is_owned(self) -> bool:
        return self._owner is current_owner() and self._lock.locked()

    def _at_fork_reinit(self) -> None:
        """Unlock in a forked child (threading's hook): the holder may not exist there."""
        self._lock._at_fork_reinit()  # type: ignore[attr-defined]
        self._owner = None
        self._frame = None
        self._count = 0

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
            holder=owner.name if locked and owner is not None else None,
            held_at=format_site(held_at) if locked and held_at is not None else None,
            recursion=max(count, 1) if locked else 0,
        )

    def __repr__(self) -> str:
        # threading's layout ("<locked _thread.lock object at 0x...>"), plus the name and holder
        owner = self._owner
        state = "locked" if self._lock.locked() else "unlocked"
        held = f" owner={owner.describe()!r}" if state == "locked" and owner is not None else ""
        if isinstance(self, RLock) and held:
            held += f" count={self._count}"
        return f"<{state} sync.{self._public_name} object {self.name!r}{held} at {id(self):#x}>"


class Lock(_TrackedLock):
    """A drop-in ``threading.Lock`` that refuses to deadlock and reports its contention.

    A cycle of threads waiting for each other's locks raises DeadlockError. A thread waiting for
    a Lock it holds itself, or one whose holder has exited, waits as with threading (another
    thread may release it) and gets a StuckLockWarning after ``warn_after`` seconds
    (``STUCK_WAIT_GRACE`` if None); with ``strict=True`` that wait raises DeadlockError at once.
    """

    __slots__ = ()

    def __new__(
        cls,
        *,
        name: str | None = None,
        detect: bool | None = None,
        strict: bool = False,
        warn_after: float | None = None,
    ) -> Lock:
        check_warn_after(warn_after)
        if detect is False and (strict or warn_after is not None):
            raise ValueError(
                "strict= and warn_after= need deadlock detection, which detect=False turns off: "
                "drop one or the other"
            )
        if cls is Lock and not (reg.DETECT if detect is None else detect):
            return object.__new__(_UncheckedLock)
        return object.__new__(cls)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if timeout != -1 or reg.ORDER or not self._try():
            return self._acquire_at(blocking, timeout, 2)
        self._frame = frame = _getframe(1)
        self._lasti = frame.f_lasti
        try:
            self._owner = LOCAL.owner
        except AttributeError:
            self._owner = current_owner()
        self._acquired += 1
        return True

    def __enter__(self) -> bool:
        if reg.ORDER or not self._try():
            return self._acquire_at(True, -1, 2)
        self._frame = frame = _getframe(1)
        self._lasti = frame.f_lasti
        try:
            self._owner = LOCAL.owner
        except AttributeError:
            self._owner = current_owner()
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

    # threading's old names, which ``_thread.lock`` keeps (without a warning); aliases, not
    # calls, so that the holder's site is still the caller's
    acquire_lock = acquire
    release_lock = release
    locked_lock = _TrackedLock.locked

    def _release_save(self) -> None:
        self._drop()

    def _acquire_restore(self, state: object, depth: int = 1) -> None:
        self._acquire_at(True, -1, depth + 1, True)


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

    # the old names again, for this class's own acquire and release
    acquire_lock = acquire
    release_lock = release

    def _took(self, where: Site | None) -> None:
        self._acquired += 1

    def _is_owned(self) -> bool:
        return self._lock.locked()


class RLock(_TrackedLock):
    """A drop-in ``threading.RLock``: re-entry by the holder is counted, never a deadlock.

    Only the holder may release it, so an untimed wait for an RLock whose holder has exited
    raises DeadlockError naming that thread (threading would hang, or let in a new thread that
    happens to get the dead one's id).
    """

    __slots__ = ()

    _public_name = "RLock"

    def __init__(self, *, name: str | None = None, detect: bool | None = None) -> None:
        super().__init__(name=name, detect=detect, strict=True)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        try:
            me = LOCAL.owner
        except AttributeError:
            me = current_owner()
        if self._owner is me and timeout == -1:
            self._count += 1
            self._acquired += 1
            return True
        return self._acquire_at(blocking, timeout, 2)

    def __enter__(self) -> bool:
        try:
            me = LOCAL.owner
        except AttributeError:
            me = current_owner()
        if self._owner is me:
            self._count += 1
            self._acquired += 1
            return True
        return self._acquire_at(True, -1, 2)

    def release(self) -> None:
        if self._owner is not current_owner():
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

    def _acquire_at(self, blocking: bool, timeout: float, depth: int, bound: bool = False) -> bool:
        if self._owner is current_owner():
            check_timeout(blocking, timeout)  # threading refuses bad ones on re-entry too
            self._count += 1
            self._acquired += 1
            return True
        return super()._acquire_at(blocking, timeout, depth + 1, bound)

    def _recursion_count(self) -> int:
        """How many times the calling thread holds the lock (0 if it does not): threading's."""
        return self._count if self._owner is current_owner() else 0

    def _release_save(self) -> int:
        """Release every level at once (for Condition.wait); the count comes back on restore."""
        if self._owner is not current_owner():
            raise RuntimeError("cannot release un-acquired lock")
        count = self._count
        self._drop()
        return count

    def _acquire_restore(self, state: int, depth: int = 1) -> None:
        super()._acquire_at(True, -1, depth + 1, True)
        self._count = state
