"""RateLimiter (how often) and CapacityLimiter (how many at once).

RateLimiter is a token bucket kept as one number (the generic cell rate algorithm): the time at
which the bucket will be full again. Each grant moves it ``tokens / rate`` seconds on, and a
request may go once that time is no more than ``burst / rate`` ahead of now. A blocking acquire
reserves its slot at once and sleeps until it, so waiters are served in arrival order, the
long-run rate is exact whatever the sleeps overshoot, and a timeout too short to reach the slot
is refused without waiting for it.

CapacityLimiter hands a freed slot straight to the longest waiter (no thundering herd, no
overtaking) and remembers who holds each slot, so a borrower that asks twice is told so.
"""

from __future__ import annotations

import threading
from _thread import allocate_lock
from collections import deque
from time import monotonic
from types import TracebackType
from typing import Any

from .._waits import acquire, sleep
from ._lock import check_wait
from ._stats import (
    CapacityLimiterStatistics,
    RateLimiterStatistics,
    WaitRecorder,
    base_fields,
)


class RateLimiter:
    """At most ``rate`` tokens a second on average, and at most ``burst`` at once."""

    def __init__(self, rate: float, *, burst: float = 1, name: str | None = None) -> None:
        if not rate > 0:
            raise ValueError("rate must be > 0 (tokens per second)")
        if not burst >= 1:
            raise ValueError("burst must be >= 1")
        self._rate = float(rate)
        self._burst = float(burst)
        self._interval = 1.0 / self._rate
        self._tolerance = self._burst * self._interval
        self._tat = monotonic()  # when the bucket is full again: now, it starts full
        self._lock = threading.Lock()
        self._rejected = 0
        self._rec = WaitRecorder()
        self.name = name if name is not None else f"RateLimiter-{id(self):x}"

    def _slot(self, tokens: float, now: float) -> tuple[float, float]:
        """When a request for ``tokens`` made ``now`` may go, and the clock after granting it."""
        if not 0 < tokens <= self._burst:
            raise ValueError(f"tokens must be > 0 and <= burst ({self._burst:g})")
        tat = max(self._tat, now) + tokens * self._interval
        return tat - self._tolerance, tat

    def try_acquire(self, tokens: float = 1) -> bool:
        """Take ``tokens`` if they are there now; never wait."""
        with self._lock:
            now = monotonic()
            go_at, tat = self._slot(tokens, now)
            if go_at > now:
                self._rejected += 1
                return False
            self._tat = tat
            self._rec.acquisitions += 1
            return True

    def acquire(self, tokens: float = 1, timeout: float | None = None) -> bool:
        """Wait for ``tokens``; False (at once) if they cannot come within ``timeout``."""
        check_wait(timeout)
        with self._lock:
            now = monotonic()
            go_at, tat = self._slot(tokens, now)
            delay = go_at - now
            if delay <= 0:
                self._tat = tat
                self._rec.acquisitions += 1
                return True
            if timeout is not None and delay > timeout:
                self._rejected += 1
                return False
            self._tat = tat  # the slot is ours from now on
            self._rec.waiting += 1
        try:
            sleep(delay)  # (rate=1e-10: a slot 1e10 s away, past what time.sleep takes)
        finally:
            with self._lock:
                self._rec.waiting -= 1
                self._rec.waited(delay, succeeded=True)
                self._rec.acquisitions += 1
        return True

    def reserve(self, tokens: float = 1) -> float:
        """Claim the next slot for ``tokens`` now; return the seconds to wait before using it.

        For callers that must not block a thread (an event loop awaits ``asyncio.sleep`` of it).
        """
        with self._lock:
            now = monotonic()
            go_at, self._tat = self._slot(tokens, now)
            self._rec.acquisitions += 1
            return max(0.0, go_at - now)

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def burst(self) -> float:
        return self._burst

    def statistics(self) -> RateLimiterStatistics:
        with self._lock:
            now = monotonic()
            tokens = max(0.0, self._burst - max(0.0, self._tat - now) * self._rate)
            return RateLimiterStatistics(
                **base_fields(self.name, self._rec),  # type: ignore[arg-type]
                rate=self._rate,
                burst=self._burst,
                tokens=tokens,
                rejected=self._rejected,
            )

    def __repr__(self) -> str:
        return f"<plait.sync.RateLimiter {self.name!r} rate={self._rate:g}/s burst={self._burst:g}>"


def _borrower_name(borrower: object) -> str:
    return borrower.name if isinstance(borrower, threading.Thread) else repr(borrower)


class CapacityLimiter:
    """At most ``total_tokens`` borrowers at once; each borrower (default: the thread) holds one."""

    def __init__(self, total_tokens: int, *, name: str | None = None) -> None:
        self._lock = threading.Lock()
        self._borrowers: set[Any] = set()
        self._waiters: deque[tuple[Any, Any]] = deque()  # (borrower, its parked lock)
        self._total = 0
        self._rec = WaitRecorder()
        self.name = name if name is not None else f"CapacityLimiter-{id(self):x}"
        self.total_tokens = total_tokens

    @property
    def total_tokens(self) -> int:
        return self._total

    @total_tokens.setter
    def total_tokens(self, value: int) -> None:
        """Change the capacity; raising it lets waiters in at once."""
        if not isinstance(value, int) or value < 1:
            raise ValueError("total_tokens must be an int >= 1")
        with self._lock:
            self._total = value
            self._hand_over()

    @property
    def borrowed_tokens(self) -> int:
        return len(self._borrowers)

    @property
    def available_tokens(self) -> int:
        return max(0, self._total - len(self._borrowers))

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        return self.acquire_on_behalf_of(threading.current_thread(), blocking, timeout)

    def acquire_on_behalf_of(
        self, borrower: object, blocking: bool = True, timeout: float | None = None
    ) -> bool:
        """Take a slot for ``borrower`` (any hashable), waiting in line if none is free."""
        check_wait(timeout)
        if not blocking and timeout is not None:
            raise ValueError("can't specify timeout for non-blocking acquire")
        with self._lock:
            if borrower in self._borrowers or any(b == borrower for b, _ in self._waiters):
                raise RuntimeError(
                    f"{_borrower_name(borrower)} already holds a token of {self.name}"
                )
            if not self._waiters and len(self._borrowers) < self._total:
                self._borrowers.add(borrower)
                self._rec.acquisitions += 1
                return True
            if not blocking:
                return False
            parked = allocate_lock()
            parked.acquire()
            entry = (borrower, parked)
            self._waiters.append(entry)
            self._rec.waiting += 1
        start = monotonic()
        try:
            got = acquire(parked, None if timeout is None else max(timeout, 0))
        except BaseException:
            # Ctrl-C (or any error) ended the wait: leave the line, or, if a slot was handed
            # over meanwhile, pass it on; else the next release gave it to nobody, for good.
            with self._lock:
                self._rec.waiting -= 1
                if any(e is entry for e in self._waiters):
                    self._waiters.remove(entry)
                else:
                    self._borrowers.discard(borrower)
                    self._hand_over()
            raise
        with self._lock:
            self._rec.waiting -= 1
            if not got and any(e is entry for e in self._waiters):
                self._waiters.remove(entry)
            else:
                got = True  # handed over just as the timeout ran out
                self._rec.acquisitions += 1
            self._rec.waited(monotonic() - start, succeeded=got)
        return got

    def release(self) -> None:
        self.release_on_behalf_of(threading.current_thread())

    def release_on_behalf_of(self, borrower: object) -> None:
        with self._lock:
            if borrower not in self._borrowers:
                raise RuntimeError(f"{_borrower_name(borrower)} holds no token of {self.name}")
            self._borrowers.remove(borrower)
            self._hand_over()

    def _hand_over(self) -> None:
        """Give free slots to the longest waiters; call with ``_lock`` held."""
        while self._waiters and len(self._borrowers) < self._total:
            borrower, parked = self._waiters.popleft()
            self._borrowers.add(borrower)
            parked.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def statistics(self) -> CapacityLimiterStatistics:
        with self._lock:
            return CapacityLimiterStatistics(
                **base_fields(self.name, self._rec),  # type: ignore[arg-type]
                total_tokens=self._total,
                borrowed=len(self._borrowers),
                borrowers=tuple(sorted(_borrower_name(b) for b in self._borrowers)),
            )

    def __repr__(self) -> str:
        return (
            f"<plait.sync.CapacityLimiter {self.name!r} "
            f"{len(self._borrowers)}/{self._total} borrowed>"
        )
