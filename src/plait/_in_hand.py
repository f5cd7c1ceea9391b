"""Items in hand while a read of the input waits: a watcher thread sends them to run.

A map reads its input in the consumer's thread, a batch at a time (``_window``), and sends a
batch to run once it has read it. An input fed by the map's own items (a crawler's queue, which
each item fills with the links it found; a generator that waits for what an item does) may give
its next item only once an item already read has run: a read that waits for it with that item
in hand waits for good. No read can tell beforehand that it will wait, and none can be ended
once it waits. So the reads of an input that may wait are watched: one that has gained no item
for ``STALL`` seconds, with items in hand not yet sent, has them sent to run from here
(``MapWindow.send_in_hand``), and its batch goes on with the items that come after them.

    consumer thread                          watcher thread (one for the program)
    ───────────────                          ────────────────────────────────────
    reading(items): the read begins ──►      every POLL seconds while a read is under way:
      items grow as they are read              one whose items did not grow for STALL
      ... a read of the next item waits        seconds, some of them not yet sent:
                                               send() ─► the map sends them to run
    reading(None): the read is over ──►      (no read under way: it waits to be told)

Costs: nothing for an input that never waits (a list, a range: not watched), nor for a read of
one item (nothing else is in hand while it waits); a few locks taken as a larger read begins
and ends. The watcher is a daemon thread of its own, started as a first map reads so, and
kept: it looks every ``POLL`` seconds while reads go on, waits to be told of the next once
none was seen for ``QUIET`` seconds, and ends once no map was watched for ``LINGER`` seconds
more (``_spare``'s time). (Started for each map and joined as it closed, it cost a map of 200
items from a generator a fifth of its time.)
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ._backends._spare import SPARE_SECONDS
from ._window import SLOW_INPUT

# A read that gained no item for this long while items are in hand sends them to run: as long
# as a read must wait for the input to count as one that trickles in (``_window``).
STALL = SLOW_INPUT
POLL = STALL / 2  # how often the watcher looks at the reads under way
QUIET = 1.0  # seconds without a read under way, after which it waits to be told of the next
LINGER = SPARE_SECONDS
NAME = "plait-input-watcher"

_lock = threading.Lock()
_wake = threading.Condition(_lock)
_watched: set[Watch] = set()  # the open maps that read an input that may wait
_thread: threading.Thread | None = None  # the watcher, while it runs
_idle = False  # the watcher waits to be told of a read that begins


class Watch:
    """One map's reads of its input, as the watcher sees them (``reading``), and what sends
    its items in hand to run (``send``, called from the watcher's thread)."""

    def __init__(self, send: Callable[[], None]) -> None:
        self._send = send
        self._items: list[Any] | None = None  # the items of the read under way, as they come
        # What the watcher saw of that read: which list, how many items, since when; and how
        # many it had when they were last sent.
        self._seen: list[Any] | None = None
        self._count = 0
        self._since = 0.0
        self._sent = 0
        self._stopped = False  # its map closed: a read that comes after is not watched

    def reading(self, items: list[Any] | None) -> None:
        """A read of the input begins, filling ``items`` as it goes; or (None) it is over."""
        global _thread
        if items is None or self._stopped:
            self._items = None
            return
        with _lock:
            self._items = items
            _watched.add(self)
            if _thread is None:
                _thread = threading.Thread(target=_watch, name=NAME, daemon=True)
                _thread.start()
            elif _idle:
                _wake.notify()

    def stop(self) -> None:
        """The map closed: its reads are no longer watched."""
        with _lock:
            self._stopped = True
            self._items = None
            _watched.discard(self)

    def _stalled(self, now: float) -> bool:
        """Whether the read under way gained no item for ``STALL`` seconds, and holds items
        not sent yet (holding the lock)."""
        items = self._items
        if items is None:
            self._seen = None
            return False
        count = len(items)  # (the consumer appends meanwhile: it only grows)
        if items is not self._seen:
            self._seen, self._count, self._since, self._sent = items, count, now, 0
            return False
        if count != self._count:
            self._count, self._since = count, now
            return False
        return count > self._sent and now - self._since >= STALL

    def _send_now(self) -> None:
        self._sent = self._count
        try:
            self._send()
        except Exception:  # (a bug of plait's: reported, and the watcher goes on for the rest)
            threading.excepthook(
                threading.ExceptHookArgs((*sys.exc_info(), threading.current_thread()))
            )


def _watch() -> None:
    """The watcher's loop: until no map was watched for ``LINGER`` seconds, or ``discard``."""
    global _idle, _thread
    me = threading.current_thread()
    last_read = time.perf_counter()
    with _lock:
        while _thread is me:
            now = time.perf_counter()
            stalled = [watch for watch in _watched if watch._stalled(now)]
            if stalled:
                _lock.release()  # (sending takes the map's locks, and may run the items here)
                try:
                    for watch in stalled:
                        watch._send_now()
                finally:
                    _lock.acquire()
                continue
            if any(watch._items is not None for watch in _watched):
                last_read = now
            # It looks on for a while after the last read it saw (a map's next read, the next
            # map's first, are seen at once): a read that begins while it waits to be told
            # tells it, a wake-up that cost a map of 200 items from a generator 5 % of its time.
            idle = _idle = now - last_read >= QUIET
            told = _wake.wait(LINGER if idle else POLL)
            _idle = False
            if idle and not told and not _watched and _thread is me:
                _thread = None


def discard() -> None:
    """End the watcher now, if it runs, and wait for it (tests, between cases)."""
    global _thread
    with _lock:
        thread, _thread = _thread, None
        _wake.notify_all()
    if thread is not None:
        thread.join()


def _forget_in_child() -> None:
    """In a fork of the program: the maps watched are the parent's, and so is the watcher."""
    global _lock, _wake, _thread, _idle
    _lock = threading.Lock()
    _wake = threading.Condition(_lock)
    _watched.clear()
    _thread = None
    _idle = False


os.register_at_fork(after_in_child=_forget_in_child)
