"""Which process a pool's workers belong to.

A fork of a program copies its pools but none of their threads (an event loop's, a thread
pool's, a dispatcher's) and no process worker is its child: a map or a call there would wait
for good, and a shutdown there would wait for threads that do not exist, or take a lock that a
thread of the parent held at the fork. So every engine knows its owner: in a fork, using it
raises ``PoolClosed``, and shutting it down does nothing (the owner does that).
"""

from __future__ import annotations

import os

from ._errors import PoolClosed

_forks = 0  # how many forks deep this process is (counted in each child)


def _forked() -> None:
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_forked)


class Owner:
    """The process that made a pool, a map or a backend."""

    __slots__ = ("_forks", "pid")

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._forks = _forks

    def forked(self) -> bool:
        """Whether this process is a fork of the owner."""
        return self._forks != _forks

    def check(self, what: str = "pool") -> None:
        """Raise ``PoolClosed`` in a fork of the owner."""
        if self._forks != _forks:
            raise forked_error(self.pid, what)


def forked_error(owner: int, what: str = "pool") -> PoolClosed:
    return PoolClosed(
        f"this {what} belongs to the parent process (pid {owner}); this process is a fork of "
        "it and cannot use its workers: create a new plait.Pool (or call plait.map) in the child"
    )
