"""Semaphore and BoundedSemaphore: threading's counters, plus who waited and for how long.

Built like CPython's: a counter under a ``threading.Condition``. Every statistic is updated under
that condition's lock, so the counts agree with each other. Semaphores take no part in deadlock
detection: a waiter waits for *any* holder, and holders may release from other threads.
"""

from __future__ import annotations

import threading
from functools import partial
from time import monotonic
from types import TracebackType

from .._waits import repeat
from ._stats import SemaphoreStatistics, WaitRecorder, base_fields


class Semaphore:
    """A drop-in ``threading.Semaphore``."""

    def __init__(self, value: int = 1, *, name: str | None = None) -> None:
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self._cond = threading.Condition(threading.Lock())
        self._value = value
        self._rec = WaitRecorder()
        self.name = name if name is not None else f"{type(self).__name__}-{id(self):x}"

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take one unit; wait (up to ``timeout`` seconds) if none is free."""
        if not blocking and timeout is not None:
            raise ValueError("can't specify timeout for non-blocking acquire")
        with self._cond:
            if self._value > 0:
                self._value -= 1
                self._rec.acquisitions += 1
                return True
            if not blocking:
                return False
            self._rec.waiting += 1
            start = monotonic()
            try:
                got = repeat(partial(self._cond.wait_for, lambda: self._value > 0), timeout)
            finally:
                self._rec.waiting -= 1
            self._rec.waited(monotonic() - start, succeeded=got)
            if got:
                self._value -= 1
                self._rec.acquisitions += 1
            return got

    def __enter__(self) -> bool:
        return self.acquire()

    def release(self, n: int = 1) -> None:
        """Give back ``n`` units, waking up to ``n`` waiters."""
        if n < 1:
            raise ValueError("n must be one or more")
        with self._cond:
            self._check_release(n)
            self._value += n
            self._cond.notify(n)

    def _check_release(self, n: int) -> None:
        """Hook for BoundedSemaphore; called with the condition held."""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def statistics(self) -> SemaphoreStatistics:
        with self._cond:
            return SemaphoreStatistics(**base_fields(self.name, self._rec), value=self._value)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        # threading's layout ("<threading.Semaphore at 0x...: value=3>"), plus the name
        return f"<sync.Semaphore at {id(self):#x} {self.name!r}: value={self._value}>"


class BoundedSemaphore(Semaphore):
    """A drop-in ``threading.BoundedSemaphore``: releasing above the initial value is an error."""

    def __init__(self, value: int = 1, *, name: str | None = None) -> None:
        super().__init__(value, name=name)
        self._initial_value = value

    def _check_release(self, n: int) -> None:
        if self._value + n > self._initial_value:
            raise ValueError("Semaphore released too many times")

    def __repr__(self) -> str:
        return (
            f"<sync.BoundedSemaphore at {id(self):#x} {self.name!r}: "
            f"value={self._value}/{self._initial_value}>"
        )
