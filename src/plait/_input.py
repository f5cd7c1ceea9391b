"""A map's input read on a thread of its own, once reading it in the consumer's thread was
seen to hold results back.

A map reads its input in the consumer's thread, batch by batch, as it tops up its window
(``_scheduler``): no thread, no lock, and the input's own code runs where the program runs it.
But while that thread waits for the next item, results that are ready wait too: an input that
trickles in (lines from ``tail -f``, messages from a queue, a socket) would get its results
late, in bursts. So when one read of the input took ``SLOW_INPUT`` or more while results
waited, the rest is read here, ahead of the window, by at most one batch: the consumer then
takes what arrived without waiting for more, and hands out what is ready meanwhile.

The input's own code then runs in this thread, one item at a time, never in two threads at
once, and in a copy of the consumer's ``contextvars`` context taken at the switch. An input
that will not be read from another thread (a ``sqlite3`` cursor, by default) should not be
this slow: it is read in the consumer's thread until then.
"""

from __future__ import annotations

import contextvars
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

# One read of the input that took this long while results waited moves the rest of the input
# to its own thread. (Not less: the input's code then runs elsewhere, which a fast input never
# needs, and a slow page of a database cursor now and then should not bring it about.)
SLOW_INPUT = 0.2


class ReadAhead:
    """The rest of an input, read ahead by at most ``limit`` items on a thread of its own;
    ``arrived()`` is called (from that thread) whenever an item arrived or the input ended."""

    def __init__(self, source: Iterator[Any], arrived: Callable[[], None], limit: int) -> None:
        self._source = source
        self._arrived = arrived
        self._limit = max(1, limit)
        self._buffer: deque[Any] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._ended = False  # the input ended (``error``: with an exception)
        self._stopped = False
        self.error: BaseException | None = None
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._read,), name="plait-input", daemon=True
        )
        self._thread.start()

    def _read(self) -> None:
        source = self._source
        try:
            while True:
                with self._cond:
                    while len(self._buffer) >= self._limit and not self._stopped:
                        self._cond.wait()
                    if self._stopped:
                        return
                try:
                    item = next(source)
                except StopIteration:
                    return
                except BaseException as exc:  # the input's own error: the map raises it
                    self.error = exc
                    return
                if not self._keep(item):
                    return
                self._arrived()
        finally:
            with self._cond:
                self._ended = True
            self._arrived()

    def _keep(self, item: Any) -> bool:
        """Buffer ``item``; False if the map was closed while it was read (it is dropped)."""
        with self._cond:
            if self._stopped:
                return False
            self._buffer.append(item)
            return True

    def take(self, size: int) -> list[Any]:
        """Up to ``size`` of the items that arrived, without waiting for more."""
        with self._cond:
            buffer = self._buffer
            items = [buffer.popleft() for _ in range(min(size, len(buffer)))]
            if items:
                self._cond.notify()
            return items

    def waiting(self) -> bool:
        """Whether items arrived that were not taken yet, or the input ended."""
        with self._cond:
            return bool(self._buffer) or self._ended

    def ended(self) -> bool:
        """Whether every item was taken and the input ended."""
        with self._cond:
            return self._ended and not self._buffer

    def stop(self) -> None:
        """The map is closed: read no more, and forget what was read. A thread waiting in the
        input for its next item ends once it comes; one whose input ended is joined."""
        with self._cond:
            self._stopped = True
            self._buffer.clear()
            self._cond.notify_all()
            ended = self._ended
        if ended:
            self._thread.join()
