"""Spare threads: a pool's service thread (the process dispatcher) that finished waits a while
for the next pool's, instead of ending.

``Thread.start()`` holds its caller until the new thread runs: about 0.15 ms here, and the
thread runs its first line later still. A program that maps again (a loop of small maps, a
notebook's next cell) would pay that at every map, on the path to its first result. Handing a
function to a spare that waits on an event costs its caller about 0.02 ms.

A spare waits at most ``SPARE_SECONDS``, then ends: nothing lingers in an idle program, and no
timer thread is needed. At interpreter exit, and in a fork of the program (where the spares do
not exist), they are let go. A service that raises is reported as an uncaught exception of its
thread (``threading.excepthook``), and its thread then ends rather than serving again.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable

from ._base import at_exit_last

SPARE_SECONDS = float(os.environ.get("PLAIT_WARM_SECONDS", "60"))
SPARE_NAME = "plait-spare"


class Service:
    """A function running on a plait thread, spare or new; ``join`` waits for it to return."""

    def __init__(self, target: Callable[[], object], name: str) -> None:
        self.target = target
        self.name = name
        self.thread: threading.Thread | None = None  # set by the thread that runs it
        self._done = threading.Event()

    def join(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def is_current(self) -> bool:
        return self.thread is threading.current_thread()


class _Mailbox:
    """Where a waiting spare is handed its next service (``None``: end)."""

    def __init__(self) -> None:
        self.thread = threading.current_thread()
        self.service: Service | None = None
        self.delivered = threading.Event()


_lock = threading.Lock()
_waiting: list[_Mailbox] = []  # the most recently parked last: it is taken first


def start(target: Callable[[], object], name: str) -> Service:
    """Run ``target`` on a spare thread, or on a new one (a daemon) if none waits."""
    service = Service(target, name)
    with _lock:
        mailbox = _waiting.pop() if _waiting else None
        if mailbox is not None:
            mailbox.service = service
            mailbox.delivered.set()
            return service
    threading.Thread(target=_serve, args=(service,), name=name, daemon=True).start()
    return service


def _serve(service: Service | None) -> None:
    me = threading.current_thread()
    while service is not None:
        me.name = service.name
        service.thread = me
        try:
            service.target()
        except BaseException:
            threading.excepthook(threading.ExceptHookArgs((*sys.exc_info(), me)))
            service._done.set()
            return  # (a bug in plait: this thread serves no more)
        me.name = SPARE_NAME
        mailbox = _Mailbox()
        with _lock:  # waiting before its service counts as done, so discard_all() finds it
            _waiting.append(mailbox)
        service._done.set()
        service = _next_service(mailbox)


def _next_service(mailbox: _Mailbox) -> Service | None:
    mailbox.delivered.wait(SPARE_SECONDS)
    with _lock:  # a service handed over after the wait gave up is still taken: see start()
        if mailbox in _waiting:
            _waiting.remove(mailbox)
    return mailbox.service


def discard_all() -> None:
    """End every waiting spare and wait for it (at exit; tests, between cases)."""
    with _lock:
        waiting = list(_waiting)
        _waiting.clear()
    for mailbox in waiting:
        mailbox.delivered.set()
    for mailbox in waiting:
        mailbox.thread.join()


def _forget_in_child() -> None:
    """In a fork of the program: the spares are the parent's threads; none exists here."""
    global _lock
    _lock = threading.Lock()
    _waiting.clear()


os.register_at_fork(after_in_child=_forget_in_child)
at_exit_last(discard_all)
