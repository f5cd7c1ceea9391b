"""Frozen snapshots of what a primitive has seen, and the small counter that feeds them.

Counters are updated only while the primitive's own bookkeeping lock (or the lock itself) is
held, so a snapshot never shows a half-applied wait.
"""

from __future__ import annotations

from dataclasses import dataclass


class WaitRecorder:
    """Mutable tallies; the owner guards every update with its own lock."""

    __slots__ = ("acquisitions", "contended", "longest_wait", "timeouts", "total_wait", "waiting")

    def __init__(self) -> None:
        self.acquisitions = 0
        self.contended = 0
        self.timeouts = 0
        self.total_wait = 0.0
        self.longest_wait = 0.0
        self.waiting = 0

    def waited(self, seconds: float, *, succeeded: bool) -> None:
        """Account for one wait that had to block; the caller counts the acquisition itself."""
        self.contended += 1
        self.total_wait += seconds
        self.longest_wait = max(self.longest_wait, seconds)
        if not succeeded:
            self.timeouts += 1


@dataclass(frozen=True, kw_only=True)
class Statistics:
    """What every plait.sync primitive reports.

    ``acquisitions`` counts successful acquires (or waits that returned true); ``contended``
    counts those that had to block first, plus blocked waits that timed out (``timeouts``).
    Wait times are in seconds. ``waiting`` is the number of threads blocked right now.
    """

    name: str
    acquisitions: int
    contended: int
    timeouts: int
    total_wait: float
    longest_wait: float
    waiting: int


def base_fields(name: str, rec: WaitRecorder) -> dict[str, str | int | float]:
    """The shared fields, so each primitive only adds what is its own."""
    return {
        "name": name,
        "acquisitions": rec.acquisitions,
        "contended": rec.contended,
        "timeouts": rec.timeouts,
        "total_wait": rec.total_wait,
        "longest_wait": rec.longest_wait,
        "waiting": rec.waiting,
    }


@dataclass(frozen=True, kw_only=True)
class LockStatistics(Statistics):
    """A Lock or RLock: ``holder`` is the holding thread's name, ``held_at`` where it took it."""

    locked: bool
    holder: str | None
    held_at: str | None
    recursion: int


@dataclass(frozen=True, kw_only=True)
class SemaphoreStatistics(Statistics):
    """``value`` is how many more acquires would succeed at once."""

    value: int


@dataclass(frozen=True, kw_only=True)
class EventStatistics(Statistics):
    """An Event's ``acquisitions`` are waits that returned true."""

    is_set: bool


@dataclass(frozen=True, kw_only=True)
class ConditionStatistics(Statistics):
    """``acquisitions`` are waits that were notified; ``notifications`` counts woken waiters."""

    notifications: int


@dataclass(frozen=True, kw_only=True)
class BarrierStatistics(Statistics):
    """``acquisitions`` counts passages through the barrier (one per thread per cycle); a wait
    that its breaking ended (``abort()``, ``reset()``, a failing action) is contended, but no
    timeout."""

    parties: int
    broken: bool
    cycles: int


@dataclass(frozen=True, kw_only=True)
class RWLockStatistics(Statistics):
    """``readers`` holding now, whether a writer holds, and writers queued (they go first)."""

    readers: int
    writer: str | None
    writers_waiting: int
    read_acquisitions: int
    write_acquisitions: int


@dataclass(frozen=True, kw_only=True)
class RateLimiterStatistics(Statistics):
    """``tokens`` available now out of ``burst``, refilled at ``rate`` per second."""

    rate: float
    burst: float
    tokens: float
    rejected: int


@dataclass(frozen=True, kw_only=True)
class CapacityLimiterStatistics(Statistics):
    """``borrowers`` are the names of whoever holds a slot now (threads or given tokens)."""

    total_tokens: int
    borrowed: int
    borrowers: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class WaitGroupStatistics(Statistics):
    """``pending`` is the counter that ``wait()`` waits to see reach zero."""

    pending: int
    added: int


@dataclass(frozen=True, kw_only=True)
class ChannelStatistics(Statistics):
    """``acquisitions`` counts received items; blocked sends and receives count as contended."""

    capacity: int
    buffered: int
    sent: int
    received: int
    closed: bool
    senders_waiting: int
    receivers_waiting: int
