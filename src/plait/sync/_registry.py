"""The wait-for graph: which thread waits for which plait lock, and the checks that refuse a wait.

Uncontended acquires never come here: a lock records its holder's Owner token (and, with detection
on, the call site) itself. Only a thread about to block takes ``GRAPH_LOCK`` and looks at the
lock's holder:

- another thread, alive: walk ``lock -> holder -> the lock that holder waits for -> ...``, and
  raise DeadlockError if the walk comes back to this thread (a cycle of two or more threads);
- this thread itself, or a thread that has exited: only another thread's ``release()`` could end
  the wait. Where only the holder may release (``refuse``: an RLock, a Condition's lock, a
  ``strict=True`` Lock) that never happens, so DeadlockError names the holder at once. A plain
  Lock keeps threading's semantics: the wait goes on, and the lock warns after its grace period
  (``stuck_holder`` and ``stuck_message``).

Otherwise the thread records its wait and blocks. Because every check and every record happen
under the same lock, the last thread to join a cycle always sees all of it.

Waits with a timeout are not recorded: they end on their own, so they cannot close a cycle that
lasts forever. Holders are written outside ``GRAPH_LOCK`` but always set after taking the lock and
cleared before releasing it, so a stale read can only miss a cycle for an instant (the periodic
re-check catches it), never invent one. Holders are Owner tokens, not thread ids: a new thread
that gets a dead holder's id is never taken for it.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
from types import FrameType
from typing import Protocol

from ._errors import DeadlockError, DeadlockLink
from ._owner import Owner

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
    _owner: Owner | None

    def held_at(self) -> Site | None: ...


_waiting: dict[Owner, tuple[Tracked, Site]] = {}


def _forked() -> None:
    """In a fork's child only the forking thread lives on: the graph's lock may have been held
    by another (its every timed or contended acquire then hung, whatever its timeout), and
    the threads the graph says wait are gone. (As ``threading`` and ``logging`` reset their own
    locks at a fork.)"""
    GRAPH_LOCK._at_fork_reinit()  # type: ignore[attr-defined]
    _waiting.clear()


os.register_at_fork(after_in_child=_forked)


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


def wait_or_raise(lock: Tracked, me: Owner, where: Site, refuse: bool) -> None:
    """Record that ``me`` waits for ``lock`` at ``where``, unless that wait could never end.

    ``refuse``: only the holder may release ``lock``, so a holder that is ``me`` or has exited
    is a deadlock too. Call with ``GRAPH_LOCK`` held.
    """
    _check(lock, me, where, refuse)
    _waiting[me] = (lock, where)


def recheck(lock: Tracked, me: Owner, refuse: bool) -> None:
    """Look again while blocked (a holder may have exited); call with ``GRAPH_LOCK`` held."""
    _check(lock, me, _waiting[me][1], refuse)


def stop_waiting(me: Owner) -> None:
    """Forget ``me``'s wait; call with ``GRAPH_LOCK`` held."""
    _waiting.pop(me, None)


def stuck_holder(lock: Tracked, me: Owner) -> Owner | None:
    """The holder, if only another thread's release could end ``me``'s wait: ``me``, or dead."""
    holder = lock._owner
    if holder is not None and (holder is me or not holder.alive):
        return holder
    return None


def _check(lock: Tracked, me: Owner, where: Site, refuse: bool) -> None:
    holder = lock._owner
    if holder is None:
        return
    if holder is me or not holder.alive:
        if refuse:
            raise _held_for_ever(me, lock, where, holder)
        return  # a plain Lock: another thread may still release it, as threading allows
    chain = _cycle_through(lock, me)
    if chain is not None:
        raise _deadlock(me, lock, where, chain)


def _cycle_through(lock: Tracked, me: Owner) -> list[Tracked] | None:
    """The locks from ``lock`` back to one ``me`` holds, or None if the chain ends elsewhere."""
    chain: list[Tracked] = []
    seen: set[Owner] = set()
    while True:
        holder = lock._owner
        if holder is None:
            return None
        chain.append(lock)
        if holder is me:
            return chain
        if holder in seen:
            return None  # a cycle that does not involve me: its last member has been told
        seen.add(holder)
        waits = _waiting.get(holder)
        if waits is None:
            return None
        lock = waits[0]


def _link(waiter: Owner, lock: Tracked, waits_at: Site | None, holder: Owner) -> DeadlockLink:
    return DeadlockLink(
        thread=waiter.name,
        waits_for=lock.name,
        waits_at=format_site(waits_at),
        held_by=holder.name,
        held_since=format_site(lock.held_at()),
        holder_exited=not holder.alive,
    )


def _deadlock(me: Owner, lock: Tracked, where: Site, chain: list[Tracked]) -> DeadlockError:
    links = []
    waiter = me
    waits_at: Site | None = where
    for held in chain:
        holder = held._owner if held._owner is not None else me
        links.append(_link(waiter, held, waits_at, holder))
        waiter = holder
        waits_at = _waiting[holder][1] if holder in _waiting else None
    return DeadlockError(tuple(links))


def _held_for_ever(me: Owner, lock: Tracked, where: Site, holder: Owner) -> DeadlockError:
    if holder is me:
        reason = f"thread {me.name!r} holds {lock.name!r} itself and only its holder releases it"
    else:
        reason = (
            f"{lock.name!r} is held by thread {holder.name!r}, which exited without releasing it"
        )
    return DeadlockError((_link(me, lock, where, holder),), reason)


def stuck_message(lock: Tracked, me: Owner, where: Site, holder: Owner, waited: float) -> str:
    """What StuckLockWarning says: who holds the lock, since where, and the ways out."""
    if holder is me:
        who = "this thread itself"
    else:
        who = f"thread {holder.name!r}, which exited without releasing it,"
    return (
        f"thread {me.name!r} has waited {waited:.1f} s for {lock.name!r} at {format_site(where)}; "
        f"{lock.name!r} is held by {who} since {format_site(lock.held_at())}. Only another "
        f"thread's release() can end this wait. If that is meant, use a Semaphore (or a Lock "
        f"with a larger warn_after=); Lock(strict=True) raises DeadlockError here at once."
    )
