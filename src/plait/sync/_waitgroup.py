"""WaitGroup: wait for a counted set of jobs to finish, as Go's sync.WaitGroup does.

``add(n)`` before starting n jobs, ``done()`` as each ends, ``wait()`` until the count is zero.
A count below zero is a bug in the caller's bookkeeping, reported at once as ValueError.
"""

from __future__ import annotations

import threading
from functools import partial
from time import monotonic

from .._waits import repeat
from ._lock import check_wait
from ._stats import WaitGroupStatistics, WaitRecorder, base_fields


class WaitGroup:
    """A counter that ``wait()`` watches fall to zero."""

    def __init__(self, *, name: str | None = None) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._pending = 0
        self._added = 0
        self._rec = WaitRecorder()
        self.name = name if name is not None else f"WaitGroup-{id(self):x}"

    def add(self, delta: int = 1) -> None:
        """Count ``delta`` more jobs (a negative delta finishes jobs)."""
        with self._cond:
            if self._pending + delta < 0:
                raise ValueError(f"WaitGroup counter would go negative ({self._pending}{delta:+d})")
            self._pending += delta
            if delta > 0:
                self._added += delta
            if self._pending == 0:
                self._cond.notify_all()

    def done(self) -> None:
        """One job finished."""
        self.add(-1)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every job counted so far is done; False if the timeout ends first."""
        check_wait(timeout)
        with self._cond:
            if self._pending == 0:
                self._rec.acquisitions += 1
                return True
            self._rec.waiting += 1
            start = monotonic()
            try:
                finished = repeat(partial(self._cond.wait_for, lambda: self._pending == 0), timeout)
            finally:
                self._rec.waiting -= 1
            self._rec.waited(monotonic() - start, succeeded=finished)
            if finished:
                self._rec.acquisitions += 1
            return finished

    @property
    def pending(self) -> int:
        return self._pending

    def statistics(self) -> WaitGroupStatistics:
        with self._cond:
            return WaitGroupStatistics(
                **base_fields(self.name, self._rec),  # type: ignore[arg-type]
                pending=self._pending,
                added=self._added,
            )

    def __repr__(self) -> str:
        return f"<plait.sync.WaitGroup {self.name!r} pending={self._pending}>"
