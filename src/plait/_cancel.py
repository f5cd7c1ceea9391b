"""Cooperative cancellation: how a running task learns that it should stop.

A thread cannot be killed, so plait asks instead. Each running task has a token; plait cancels
the token when the task's deadline passes, its map is abandoned or its pool terminates, and the
task's own code can look (``cancelled()``) or bail out (``checkpoint()``) between steps.
"""

from __future__ import annotations

import threading

from ._errors import Cancelled


class CancelToken:
    """A flag that can be set once; a child token is also cancelled when its parent is."""

    __slots__ = ("_cancelled", "_parent")

    def __init__(self, parent: CancelToken | None = None) -> None:
        self._cancelled = False
        self._parent = parent

    @property
    def cancelled(self) -> bool:
        return self._cancelled or (self._parent is not None and self._parent.cancelled)

    def cancel(self) -> None:
        self._cancelled = True

    def renewed(self) -> CancelToken:
        """A fresh token under the same parent: for another attempt at a timed-out task."""
        return CancelToken(self._parent)


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
