"""Waits of any length: plait's timeouts have no upper bound, the system's waits do.

A timeout plait takes may be any finite number of seconds (``_validate.check_timeout``): a
``task_timeout`` of a month, a ``timeout=1e308`` for "never, really". The calls that wait take
far less, and raise ``OverflowError`` past it: epoll and poll take an int of milliseconds (24.8
days), a lock's ``acquire``, ``Event.wait`` and ``time.sleep`` what the clock's nanoseconds hold
(``threading.TIMEOUT_MAX``, 292 years; 1e10 s fails). So no wait here asks the system for more
than ``LONGEST_WAIT``: a loop that runs until its deadline anyway waits ``cut(timeout)`` a round;
any other wait goes through ``repeat``, which waits again until the time is up. A leaf: it
imports nothing of plait's (``plait.sync`` and the worker's side use it too).
"""

from __future__ import annotations

import math
import select
import threading
import time
from collections.abc import Callable
from typing import Protocol, overload

# A day: every system wait takes it, and one wake-up a day to wait again costs nothing.
LONGEST_WAIT = 86_400.0


@overload
def cut(timeout: float) -> float: ...
@overload
def cut(timeout: None) -> None: ...
def cut(timeout: float | None) -> float | None:
    """``timeout`` (None: no limit) as one system wait takes it: at most ``LONGEST_WAIT``. For
    a caller that looks at its deadline after each wait and waits again if it is not yet due."""
    return None if timeout is None else min(timeout, LONGEST_WAIT)


def repeat(wait: Callable[[float | None], object], timeout: float | None) -> bool:
    """``wait(seconds)`` for ``timeout`` seconds (None: without limit), however long: a wait
    longer than ``LONGEST_WAIT`` is made of several, until one returns true (what it waited
    for came) or the time is up. ``wait`` is ``event.wait``, ``lock.acquire`` with blocking
    set, ``partial(cond.wait_for, predicate)``... A timeout within reach is passed on as it is
    (so are its errors: a negative ``time.sleep``)."""
    if timeout is None or timeout <= LONGEST_WAIT:
        return bool(wait(timeout))
    deadline = time.monotonic() + timeout
    while not wait(LONGEST_WAIT):
        left = deadline - time.monotonic()
        if left <= LONGEST_WAIT:
            return bool(wait(max(0.0, left)))
    return True


# How soon a Ctrl-C reaches the main thread while it waits (see ``attentive``).
SIGNAL_CHECK = 0.2


def attentive(wait: Callable[[float | None], object], timeout: float | None) -> bool:
    """``repeat``, but in the main thread a wait of at most ``SIGNAL_CHECK`` at a time. The
    kernel may hand a Ctrl-C to any thread of the process (a worker asleep in ``time.sleep``),
    and then nothing interrupts the main thread's wait: Python runs the signal's handler in
    the main thread only once it runs again. A ``with Pool()`` block's end waited so for its
    tasks, and the KeyboardInterrupt came only once they ended."""
    if threading.current_thread() is not threading.main_thread():
        return repeat(wait, timeout)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return bool(wait(0.0))
        if wait(SIGNAL_CHECK if left is None else min(SIGNAL_CHECK, left)):
            return True


def joined(thread: threading.Thread, seconds: float | None) -> bool:
    """``thread.join(seconds)``, saying whether the thread has ended: for ``attentive``."""
    thread.join(seconds)
    return not thread.is_alive()


def sleep(seconds: float) -> None:
    """``time.sleep(seconds)``, however long."""
    repeat(lambda part: time.sleep(seconds if part is None else part), seconds)


class _Lock(Protocol):
    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...


def acquire(lock: _Lock, timeout: float | None) -> bool:
    """``lock.acquire(True, timeout)`` (None: without limit), however long."""
    return repeat(lambda part: lock.acquire(True, -1 if part is None else part), timeout)


def readable(fd: int, timeout: float | None) -> bool:
    """Whether ``fd`` turns readable (data, or its other end closed) within ``timeout`` seconds
    (None: whenever it does), however long. poll, never select: select takes no descriptor
    past 1023, and a program with many workers or files open has them."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return repeat(
        lambda part: poller.poll(None if part is None else math.ceil(part * 1000)), timeout
    )
