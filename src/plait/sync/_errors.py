"""What ``plait.sync`` reports when waiting would go wrong.

    PlaitError (plait._errors)
     ├── DeadlockError (also a RuntimeError)   waiting here would never end: a cycle of plait locks
     └── ChannelClosed                         a Channel was used after close()
    UserWarning
     └── LockOrderWarning                      two locks were taken in both orders (opt-in checker)

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

    def __str__(self) -> str:
        return (
            f"thread {self.thread!r} waits for {self.waits_for!r} at {self.waits_at}; "
            f"{self.waits_for!r} is held by {self.held_by!r} since {self.held_since}"
        )


class DeadlockError(PlaitError, RuntimeError):
    """Waiting for this lock would never end: its holders wait, in a cycle, for this thread.

    ``cycle`` lists each link, starting with the thread that raised. The lock is not acquired;
    unwinding releases the locks this thread holds, so the other threads in the cycle go on.
    """

    def __init__(self, cycle: tuple[DeadlockLink, ...]) -> None:
        lines = "\n".join(f"  {link}" for link in cycle)
        super().__init__(f"deadlock: this wait would never end (cycle of {len(cycle)}):\n{lines}")
        self.cycle = cycle

    def __reduce__(self) -> tuple[type[DeadlockError], tuple[tuple[DeadlockLink, ...]]]:
        return (DeadlockError, (self.cycle,))


class ChannelClosed(PlaitError):
    """A value was sent on a closed Channel, or received from one that is closed and empty."""


class LockOrderWarning(UserWarning):
    """Two locks were taken in opposite orders: some schedule of these threads can deadlock."""
