"""Which thread holds a plait lock: one token per thread, which knows when its thread has ended.

Thread ids are reused as soon as a thread ends, so a lock that remembered only its holder's id
would take a new thread for a dead holder: an RLock would let it straight in, and the deadlock
check would see a cycle that is not there. So each thread gets one Owner, the first time it takes
a plait lock, kept in a ``threading.local``; locks keep the token and compare it by identity.

Liveness comes from the same thread-local: the token holds only a weak reference to a marker that
the thread's local storage holds, and CPython drops a thread's local storage as the thread ends
(before ``join()`` returns). So ``alive`` turns false then, for threads started by ``threading``
and by ``_thread`` alike, and without creating a ``threading._DummyThread`` for the latter (which
Python 3.11 would keep in ``threading.enumerate()`` forever).
"""

from __future__ import annotations

import threading
import weakref
from _thread import get_ident

# threading's own table of the threads it started, read without creating a _DummyThread (as
# threading.current_thread() would in a thread started by _thread). Private, so it is optional.
_KNOWN: dict[int, threading.Thread] = getattr(threading, "_active", {})

LOCAL = threading.local()
"""``LOCAL.owner`` is this thread's Owner once ``current_owner()`` has run in it."""


class _Marker:
    """Lives exactly as long as its thread's local storage."""

    __slots__ = ("__weakref__",)


class Owner:
    """One thread, as a lock holder: compared by identity, never by (reusable) thread id."""

    __slots__ = ("_marker", "_thread", "ident")

    def __init__(self, marker: _Marker) -> None:
        self.ident = get_ident()
        self._thread = _KNOWN.get(self.ident)  # None for a thread that _thread started
        self._marker = weakref.ref(marker)

    @property
    def alive(self) -> bool:
        """False once the thread has ended (and for ever after, even if its id is reused)."""
        return self._marker() is not None

    @property
    def name(self) -> str:
        thread = self._thread
        if thread is None and self.alive:
            thread = _KNOWN.get(self.ident)  # it may have called threading.current_thread()
        return thread.name if thread is not None else f"thread-{self.ident}"

    def describe(self) -> str:
        """The name, marked if the thread has ended: what error messages show."""
        return self.name if self.alive else f"{self.name} (exited)"

    def __repr__(self) -> str:
        return f"<plait.sync owner {self.describe()!r}>"


def current_owner() -> Owner:
    """The calling thread's Owner, made on first use."""
    try:
        owner: Owner = LOCAL.owner
    except AttributeError:
        marker = _Marker()
        owner = Owner(marker)
        LOCAL.marker = marker
        LOCAL.owner = owner
    return owner
