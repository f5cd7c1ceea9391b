"""What ``plait.sync`` reports when waiting would go wrong.

    PlaitError (plait._errors)
     ├── DeadlockError (also a RuntimeError)   waiting here would never end: a cycle of plait
     │                                         locks, or a lock only an exited thread could release
     └── ChannelClosed                         a Channel was used after close()
    UserWarning
     └── LockOrderWarning                      two locks were taken in both orders (opt-in checker)
    RuntimeWarning
     └── StuckLockWarning                      a Lock wait only another thread's release can end
                                               has lasted past its grace period

A deadlock is refused at the moment the cycle closes, by the thread that would close it, so the
report carries the whole cycle while every thread in it is still where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._errors import PlaitError


@dataclass(frozen=True)
class DeadlockLink:
    """One step of a deadlock: a thread waits for a lock that another thread holds."""

    thread: str
    waits_for: str
    waits_at: str
    held_by: str
    held_since: str
    holder_exited: bool = False
    """The holder's thread has ended without releasing the lock."""

    def __str__(self) -> str:
        exited = " (exited)" if self.holder_exited else ""
        return (
            f"thread {self.thread!r} waits for {self.waits_for!r} at {self.waits_at}; "
            f"{self.waits_for!r} is held by {self.held_by!r}{exited} since {self.held_since}"
        )


class DeadlockError(PlaitError, RuntimeError):
    """Waiting for this lock would never end: no thread that may release it ever will.

    Either its holders wait, in a cycle, for this thread; or the lock is one only its holder may
    release (an RLock, a Condition's lock, a ``strict=True`` Lock) and the holder is this very
    thread or a thread that has exited. ``cycle`` lists each link, starting with the thread that
    raised (one link when the holder is this thread or has exited); ``reason`` says which case it
    is. The lock is not acquired; unwinding releases the locks this thread holds.
    """

    def __init__(self, cycle: tuple[DeadlockLink, ...], reason: str | None = None) -> None:
        lines = "\n".join(f"  {link}" for link in cycle)
        why = reason if reason is not None else f"cycle of {len(cycle)}"
        super().__init__(f"deadlock: this wait would never end ({why}):\n{lines}")
        self.cycle = cycle
        self.reason = why

    def __reduce__(
        self,
    ) -> tuple[type[DeadlockError], tuple[tuple[DeadlockLink, ...], str]]:
        return (DeadlockError, (self.cycle, self.reason))


class ChannelClosed(PlaitError):
    """A value was sent on a closed Channel, or received from one that is closed and empty."""


class LockOrderWarning(UserWarning):
    """Two locks were taken in opposite orders: some schedule of these threads can deadlock."""


class StuckLockWarning(RuntimeWarning):
    """A wait for a plain Lock has lasted past its grace period, and only another thread can end it.

    The lock's holder is the waiting thread itself, or a thread that has exited: threading allows
    another thread to release the lock and end the wait, so plait keeps waiting, but says so once.
    ``Lock(strict=True)`` raises DeadlockError at once instead.
    """
