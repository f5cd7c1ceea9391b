"""Channel: a bounded, closeable pipe between any number of producers and consumers.

``send`` blocks while the buffer is full, ``recv`` while it is empty; both take a timeout and
raise TimeoutError when it ends. ``close()`` is the producers' way to say "no more": senders get
ChannelClosed at once (even those already waiting), receivers first drain what is buffered and
then get ChannelClosed, which ends ``for item in channel``. ``with channel:`` closes on exit.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from functools import partial
from time import monotonic
from types import TracebackType
from typing import Generic, TypeVar

from .._waits import repeat
from ._errors import ChannelClosed
from ._lock import check_wait
from ._stats import ChannelStatistics, WaitRecorder, base_fields

T = TypeVar("T")


class Channel(Generic[T]):
    """A FIFO of at most ``capacity`` items; ``Channel[int](10)`` for a typed one."""

    def __init__(self, capacity: int, *, name: str | None = None) -> None:
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError("capacity must be an int >= 1")
        self._capacity = capacity
        self._items: deque[T] = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closed = False
        self._sent = 0
        self._received = 0
        self._senders_waiting = 0
        self._receivers_waiting = 0
        self._rec = WaitRecorder()
        self.name = name if name is not None else f"Channel-{id(self):x}"

    def send(self, item: T, timeout: float | None = None) -> None:
        """Put ``item`` in, waiting for room; ChannelClosed if the channel is or gets closed."""
        check_wait(timeout)
        with self._lock:
            if self._closed:
                raise ChannelClosed(f"send on closed channel {self.name!r}")
            if len(self._items) >= self._capacity:
                self._senders_waiting += 1
                try:
                    self._block(self._not_full, self._room_or_closed, timeout, "send")
                finally:
                    self._senders_waiting -= 1
                if self._closed:
                    raise ChannelClosed(f"channel {self.name!r} was closed while sending")
            self._items.append(item)
            self._sent += 1
            self._not_empty.notify()

    def recv(self, timeout: float | None = None) -> T:
        """Take the oldest item, waiting for one; ChannelClosed once closed and drained."""
        check_wait(timeout)
        with self._lock:
            if not self._items:
                if self._closed:
                    raise ChannelClosed(f"channel {self.name!r} is closed and empty")
                self._receivers_waiting += 1
                try:
                    self._block(self._not_empty, self._item_or_closed, timeout, "recv")
                finally:
                    self._receivers_waiting -= 1
                if not self._items:
                    raise ChannelClosed(f"channel {self.name!r} is closed and empty")
            item = self._items.popleft()
            self._received += 1
            self._rec.acquisitions += 1
            self._not_full.notify()
            return item

    def _room_or_closed(self) -> bool:
        return self._closed or len(self._items) < self._capacity

    def _item_or_closed(self) -> bool:
        return self._closed or bool(self._items)

    def _block(
        self,
        cond: threading.Condition,
        ready: Callable[[], bool],
        timeout: float | None,
        what: str,
    ) -> None:
        start = monotonic()
        self._rec.waiting += 1
        try:
            ok = repeat(partial(cond.wait_for, ready), timeout)  # (see ``_waits``)
        finally:
            self._rec.waiting -= 1
        self._rec.waited(monotonic() - start, succeeded=ok)
        if not ok:
            raise TimeoutError(f"{what} on {self.name!r} timed out after {timeout} s")

    def close(self) -> None:
        """No more sends; receivers drain what is left. Closing twice is harmless."""
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def capacity(self) -> int:
        return self._capacity

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[T]:
        """Receive until the channel is closed and drained."""
        while True:
            try:
                yield self.recv()
            except ChannelClosed:
                return

    def __enter__(self) -> Channel[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def statistics(self) -> ChannelStatistics:
        with self._lock:
            return ChannelStatistics(
                **base_fields(self.name, self._rec),  # type: ignore[arg-type]
                capacity=self._capacity,
                buffered=len(self._items),
                sent=self._sent,
                received=self._received,
                closed=self._closed,
                senders_waiting=self._senders_waiting,
                receivers_waiting=self._receivers_waiting,
            )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<plait.sync.Channel {self.name!r} {state} {len(self._items)}/{self._capacity}>"
