"""Barrier: threading's meeting point for a fixed number of threads, plus cycle statistics.

The state machine is threading's: filling -> draining (the last arrival runs ``action`` and
lets everyone go) -> filling again; ``reset()`` passes through resetting, and a timeout, an
``abort()`` or a failing action breaks the barrier for everyone until reset. Breaking raises
``threading.BrokenBarrierError`` itself, so existing ``except`` clauses keep working.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from time import monotonic

from .._waits import repeat
from ._stats import BarrierStatistics, WaitRecorder, base_fields

BrokenBarrierError = threading.BrokenBarrierError

_FILLING, _DRAINING, _RESETTING, _BROKEN = 0, 1, -1, -2


class Barrier:
    """A drop-in ``threading.Barrier``."""

    def __init__(
        self,
        parties: int,
        action: Callable[[], object] | None = None,
        timeout: float | None = None,
        *,
        name: str | None = None,
    ) -> None:
        if parties < 1:
            raise ValueError("parties must be >= 1")
        self._cond = threading.Condition(threading.Lock())
        self._parties = parties
        self._action = action
        self._timeout = timeout
        self._state = _FILLING
        self._count = 0
        self._cycles = 0
        self._rec = WaitRecorder()
        self.name = name if name is not None else f"Barrier-{id(self):x}"

    def wait(self, timeout: float | None = None) -> int:
        """Wait until ``parties`` threads are here; return this thread's arrival index."""
        if timeout is None:
            timeout = self._timeout
        with self._cond:
            self._enter()
            index = self._count
            self._count += 1
            try:
                if index + 1 == self._parties:
                    self._release()
                else:
                    self._wait(timeout)
                self._rec.acquisitions += 1
                return index
            finally:
                self._count -= 1
                self._exit()

    def _enter(self) -> None:
        while self._state in (_DRAINING, _RESETTING):
            self._cond.wait()  # the previous cycle is still letting its threads go
        if self._state == _BROKEN:
            raise BrokenBarrierError

    def _release(self) -> None:
        try:
            if self._action is not None:
                self._action()
            self._state = _DRAINING
            self._cycles += 1
            self._cond.notify_all()
        except BaseException:
            self._break()
            raise

    def _wait(self, timeout: float | None) -> None:
        start = monotonic()
        timed_out = False
        try:
            passed = repeat(partial(self._cond.wait_for, lambda: self._state != _FILLING), timeout)
            timed_out = not passed
        finally:
            # Only a wait whose time ran out is a timeout: one that an abort(), a reset() or a
            # failing action broke ended for another reason.
            self._rec.waited(monotonic() - start, succeeded=not timed_out)
        if not passed:
            self._break()
            raise BrokenBarrierError
        if self._state < 0:
            raise BrokenBarrierError

    def _exit(self) -> None:
        if self._count == 0 and self._state in (_DRAINING, _RESETTING):
            self._state = _FILLING
            self._cond.notify_all()

    def reset(self) -> None:
        """Return to the empty state; threads waiting now get BrokenBarrierError."""
        with self._cond:
            if self._count > 0:
                if self._state in (_FILLING, _BROKEN):
                    self._state = _RESETTING
            else:
                self._state = _FILLING
            self._cond.notify_all()

    def abort(self) -> None:
        """Break the barrier: current and future waits raise until ``reset()``."""
        with self._cond:
            self._break()

    def _break(self) -> None:
        self._state = _BROKEN
        self._cond.notify_all()

    @property
    def parties(self) -> int:
        return self._parties

    @property
    def n_waiting(self) -> int:
        return self._count if self._state == _FILLING else 0

    @property
    def broken(self) -> bool:
        return self._state == _BROKEN

    def statistics(self) -> BarrierStatistics:
        with self._cond:
            fields = base_fields(self.name, self._rec)
            fields["waiting"] = self.n_waiting
            return BarrierStatistics(
                **fields,  # type: ignore[arg-type]
                parties=self._parties,
                broken=self.broken,
                cycles=self._cycles,
            )

    def __repr__(self) -> str:
        # threading's layout ("<threading.Barrier at 0x...: waiters=1/3>"), plus the name
        state = "broken" if self.broken else f"waiters={self.n_waiting}/{self._parties}"
        return f"<sync.Barrier at {id(self):#x} {self.name!r}: {state}>"
