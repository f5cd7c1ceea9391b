"""The wait-for graph: which thread waits for which plait lock, and the check that refuses a cycle.

Uncontended acquires never come here: a lock records its holder's ident (and, with detection on,
the call site) itself. Only a thread about to block takes ``GRAPH_LOCK``, walks
``lock -> holder -> the lock that holder waits for -> ...``, and raises DeadlockError if the walk
comes back to itself; otherwise it records its own wait and blocks. Because every check and every
record happen under the same lock, the last thread to join a cycle always sees all of it.

Waits with a timeout are not recorded: they end on their own, so they cannot close a cycle that
lasts forever. Holders are written outside ``GRAPH_LOCK`` but always set after taking the lock and
cleared before releasing it, so a stale read can only miss a cycle for an instant (the periodic
re-check catches it), never invent one.
"""

from __future__ import annotations

import itertools
import sys
import threading
from types import FrameType
from typing import Protocol

from ._errors import DeadlockError, DeadlockLink

Site = tuple[FrameType, int]
"""A frame and its ``f_lasti`` at the time: the line is worked out only if someone asks."""

GRAPH_LOCK = threading.Lock()
RECHECK_INTERVAL = 0.1
SERIALS = itertools.count(1)


# Process-wide switches. Module globals, because Python 3.11 specializes a module attribute read
# and not a class attribute read, and these are read on every acquire.
DETECT = True
ORDER = False


class Tracked(Protocol):
    """What the graph needs to know about a lock."""

    name: str
    _owner: int | None

    def held_at(self) -> Site | None: ...


_waiting: dict[int, tuple[Tracked, Site]] = {}


def set_deadlock_detection(enabled: bool) -> None:
    """Turn deadlock detection on or off for the whole process.

    Locks created while it is off skip site recording too (the cheapest fast path) and never take
    part in detection; locks created while it is on stop checking as soon as it is turned off.
    """
    global DETECT
    DETECT = bool(enabled)


def deadlock_detection_enabled() -> bool:
    """Whether new plait locks detect deadlocks."""
    return DETECT


def set_order_checks(enabled: bool) -> None:
    global ORDER
    ORDER = enabled


def site(depth: int) -> Site:
    """The caller ``depth`` frames up."""
    frame = sys._getframe(depth + 1)
    return (frame, frame.f_lasti)


def format_site(where: Site | None) -> str:
    if where is None:
        return "<unknown>"
    frame, lasti = where
    code = frame.f_code
    line = next((n for start, end, n in code.co_lines() if start <= lasti < end), None)
    return f"{code.co_filename}:{line or frame.f_lineno} in {code.co_name}"


def wait_or_raise(lock: Tracked, me: int, where: Site) -> None:
    """Record that ``me`` waits for ``lock`` at ``where``, unless that closes a cycle.

    Call with ``GRAPH_LOCK`` held.
    """
    chain = _cycle_through(lock, me)
    if chain is not None:
        raise _deadlock(me, lock, where, chain)
    _waiting[me] = (lock, where)


def recheck(lock: Tracked, me: int) -> None:
    """Look again while blocked; call with ``GRAPH_LOCK`` held."""
    chain = _cycle_through(lock, me)
    if chain is not None:
        raise _deadlock(me, lock, _waiting[me][1], chain)


def stop_waiting(me: int) -> None:
    """Forget ``me``'s wait; call with ``GRAPH_LOCK`` held."""
    _waiting.pop(me, None)


def _cycle_through(lock: Tracked, me: int) -> list[Tracked] | None:
    """The locks from ``lock`` back to one ``me`` holds, or None if the chain ends elsewhere."""
    chain: list[Tracked] = []
    seen: set[int] = set()
    while True:
        holder = lock._owner
        if holder is None:
            return None
        chain.append(lock)
        if holder == me:
            return chain
        if holder in seen:
            return None  # a cycle that does not involve me: its last member has been told
        seen.add(holder)
        waits = _waiting.get(holder)
        if waits is None:
            return None
        lock = waits[0]


def _deadlock(me: int, lock: Tracked, where: Site, chain: list[Tracked]) -> DeadlockError:
    names = {t.ident: t.name for t in threading.enumerate()}
    links = []
    waiter: int = me
    waits_at: Site | None = where
    for held in chain:
        holder = held._owner if held._owner is not None else me
        links.append(
            DeadlockLink(
                thread=names.get(waiter, f"thread-{waiter}"),
                waits_for=held.name,
                waits_at=format_site(waits_at),
                held_by=names.get(holder, f"thread-{holder}"),
                held_since=format_site(held.held_at()),
            )
        )
        waiter = holder
        waits_at = _waiting[holder][1] if holder in _waiting else None
    return DeadlockError(tuple(links))
