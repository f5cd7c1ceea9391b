"""Event: threading's one-way flag, plus how many waited and for how long."""

from __future__ import annotations

import threading
import warnings
from math import isnan
from time import monotonic

from .._waits import repeat
from ._stats import EventStatistics, WaitRecorder, base_fields


class Event:
    """A drop-in ``threading.Event``."""

    def __init__(self, *, name: str | None = None) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._flag = False
        self._rec = WaitRecorder()
        self.name = name if name is not None else f"Event-{id(self):x}"

    def is_set(self) -> bool:
        return self._flag

    def isSet(self) -> bool:
        """Deprecated alias of is_set(), warning as threading's does."""
        warnings.warn(
            "isSet() is deprecated, use is_set() instead", DeprecationWarning, stacklevel=2
        )
        return self.is_set()

    def set(self) -> None:
        """Set the flag and wake every waiter; later waits return at once."""
        with self._cond:
            self._flag = True
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the flag is set or the timeout ends; return the flag."""
        if timeout is not None and isnan(timeout):
            # threading's Condition.wait does not block for a timeout that is not > 0, NaN
            # included; ``repeat`` would take NaN for a long wait and wait a day at a time.
            timeout = 0.0
        with self._cond:
            if self._flag:
                self._rec.acquisitions += 1
                return True
            self._rec.waiting += 1
            start = monotonic()
            try:
                # one wait, as threading does: a set() that wakes us counts even if a clear()
                # follows before we run again. (A wait longer than a system wait takes is
                # made of several, see ``_waits``; a set() as one ends is seen in the flag.)
                signaled = repeat(lambda part: self._cond.wait(part) or self._flag, timeout)
            finally:
                self._rec.waiting -= 1
            self._rec.waited(monotonic() - start, succeeded=signaled)
            if signaled:
                self._rec.acquisitions += 1
            return signaled

    def _at_fork_reinit(self) -> None:
        """threading's hook for a forked child: a fresh condition, the flag kept."""
        self._cond._at_fork_reinit()  # type: ignore[attr-defined]

    def statistics(self) -> EventStatistics:
        with self._cond:
            return EventStatistics(**base_fields(self.name, self._rec), is_set=self._flag)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        # threading's layout ("<threading.Event at 0x...: unset>"), plus the name
        return f"<sync.Event at {id(self):#x} {self.name!r}: {'set' if self._flag else 'unset'}>"
