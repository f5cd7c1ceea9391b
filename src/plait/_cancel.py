"""Cooperative cancellation: how a running task learns that it should stop.

A thread cannot be killed, so plait asks instead. Each running task has a token; plait cancels
the token when the task's deadline passes, its map is abandoned, its group fails or its pool
terminates, and the task's own code can look (``cancelled()``), bail out (``checkpoint()``) or
wait in a way that wakes up at once on cancellation (``sleep()``).

Tokens form a tree (a map's token above its tasks', a group's above its tasks' and their nested
groups'): cancelling one cancels everything below it.
"""

from __future__ import annotations

import threading
import time
import weakref

from ._errors import Cancelled

_tree_lock = threading.Lock()  # guards adoption and propagation, so no child is missed


class CancelToken:
    """A flag set once; cancelling a token cancels its descendants too."""

    __slots__ = ("__weakref__", "_cancelled", "_children", "_event", "_parent")

    def __init__(self, parent: CancelToken | None = None) -> None:
        self._cancelled = False
        self._parent = parent
        self._children: weakref.WeakSet[CancelToken] | None = None
        self._event: threading.Event | None = None
        if parent is not None:
            with _tree_lock:
                if parent._children is None:
                    parent._children = weakref.WeakSet()
                parent._children.add(self)
                self._cancelled = parent._cancelled

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        with _tree_lock:
            pending = [self]
            while pending:
                token = pending.pop()
                if token._cancelled and token is not self:
                    continue
                token._cancelled = True
                if token._event is not None:
                    token._event.set()
                if token._children:
                    pending.extend(token._children)

    def renewed(self) -> CancelToken:
        """A fresh token under the same parent: for another attempt at a timed-out task."""
        return CancelToken(self._parent)

    def wait(self, timeout: float | None) -> bool:
        """Block up to ``timeout`` seconds or until cancelled; True if cancelled."""
        with _tree_lock:
            if self._event is None:
                self._event = threading.Event()
                if self._cancelled:
                    self._event.set()
        return self._event.wait(timeout)


_current = threading.local()


def current_token() -> CancelToken | None:
    token: CancelToken | None = getattr(_current, "token", None)
    return token


def set_current_token(token: CancelToken | None) -> None:
    _current.token = token


def cancelled() -> bool:
    """True when the task running in this thread has been told to stop.

    Outside a plait task (and in a process worker, which is killed rather than asked) it is
    always False. Long loops should check it, or call ``checkpoint()``, between steps.
    """
    token = current_token()
    return token is not None and token.cancelled


def checkpoint() -> None:
    """Raise ``plait.Cancelled`` if the task running in this thread has been told to stop."""
    if cancelled():
        raise Cancelled("plait: this task was cancelled")


def sleep(seconds: float) -> None:
    """``time.sleep`` that a plait task's cancellation interrupts (raising ``plait.Cancelled``).

    Outside a plait task it is ``time.sleep``.
    """
    token = current_token()
    if token is None:
        time.sleep(seconds)
    elif token.wait(seconds):
        raise Cancelled("plait: this task was cancelled while it slept")
