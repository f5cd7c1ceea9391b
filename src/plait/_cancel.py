"""Cooperative cancellation: how a running task learns that it should stop.

A thread cannot be killed, so plait asks instead. Each running task has a token; plait cancels
the token when the task's deadline passes, its map is abandoned, its group fails or its pool
terminates, and the task's own code can look (``cancelled()``), bail out (``checkpoint()``) or
wait in a way that wakes up at once on cancellation (``sleep()``).

Tokens form a tree (a map's token above its tasks', a group's above its tasks' and their nested
groups'): a token is cancelled when it or any ancestor is. Making a token costs next to nothing;
only a token that someone waits on (``sleep``) or watches (``on_cancel``) registers with its
ancestors, so that cancelling one of them wakes it.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

from . import _standin, _waits
from ._errors import Cancelled, CancelReason

_lock = threading.Lock()  # guards listener registration and cancellation, so no wake-up is lost


class CancelToken:
    """A flag set once; a token counts as cancelled when it or an ancestor is."""

    __slots__ = (
        "__weakref__",
        "_callbacks",
        "_cancelled",
        "_event",
        "_listeners",
        "_parent",
        "_reason",
    )

    def __init__(self, parent: CancelToken | None = None) -> None:
        self._cancelled = False
        self._reason = CancelReason.CANCELLED
        self._parent = parent
        # Descendants to wake on cancel; weak, so a finished task's token does not linger.
        self._listeners: weakref.WeakSet[CancelToken] | None = None
        self._event: threading.Event | None = None
        self._callbacks: list[Callable[[], object]] | None = None

    @property
    def parent(self) -> CancelToken | None:
        return self._parent

    @property
    def cancelled(self) -> bool:
        token: CancelToken | None = self
        while token is not None:
            if token._cancelled:
                return True
            token = token._parent
        return False

    @property
    def cancelled_itself(self) -> bool:
        """Whether this token was cancelled, not (only) an ancestor."""
        return self._cancelled

    @property
    def reason(self) -> CancelReason:
        """Why it was cancelled: the reason given to the nearest cancelled ancestor (or itself)."""
        token: CancelToken | None = self
        while token is not None:
            if token._cancelled:
                return token._reason
            token = token._parent
        return CancelReason.CANCELLED

    def cancel(self, reason: CancelReason = CancelReason.CANCELLED) -> None:
        """Cancel it and its descendants; the first reason given is the one kept."""
        callbacks: list[Callable[[], object]] = []
        with _lock:
            if not self._cancelled:
                self._reason = reason
            self._cancelled = True
            for token in [self, *list(self._listeners or ())]:
                if token._event is not None:
                    token._event.set()
                if token._callbacks:
                    callbacks.extend(token._callbacks)
                    token._callbacks = None
            self._listeners = None
        for callback in callbacks:  # outside the lock: a callback may take other locks
            callback()

    def renewed(self) -> CancelToken:
        """A fresh token under the same parent: for another attempt at a timed-out task."""
        return CancelToken(self._parent)

    def _listen(self) -> bool:  # holding _lock; True if already cancelled
        if self.cancelled:
            return True
        ancestor = self._parent
        while ancestor is not None:
            if ancestor._listeners is None:
                ancestor._listeners = weakref.WeakSet()
            ancestor._listeners.add(self)
            ancestor = ancestor._parent
        return False

    def on_cancel(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once when this token is cancelled (at once if it already is)."""
        with _lock:
            if not self._listen():
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(callback)
                return
        callback()

    def forget(self, callback: Callable[[], object]) -> None:
        """Undo ``on_cancel(callback)``, if it was not called yet: whoever watched is done."""
        with _lock:
            if self._callbacks and callback in self._callbacks:
                self._callbacks.remove(callback)

    def wait(self, timeout: float | None) -> bool:
        """Block up to ``timeout`` seconds or until cancelled; True if cancelled."""
        with _lock:
            if self._event is None:
                self._event = threading.Event()
                if self._listen():
                    self._event.set()
        return _waits.repeat(self._event.wait, timeout)


_current = threading.local()


def current_token() -> CancelToken | None:
    standin = _standin.current()  # (an item run inline, in the consumer's thread)
    token: CancelToken | None = (
        getattr(_current, "token", None) if standin is None else standin.token
    )
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
    token = current_token()
    if token is not None and token.cancelled:
        raise Cancelled(token.reason)


def sleep(seconds: float) -> None:
    """``time.sleep`` that a plait task's cancellation interrupts (raising ``plait.Cancelled``).

    Outside a plait task it is ``time.sleep``.
    """
    token = current_token()
    if token is None:
        _waits.sleep(seconds)
    elif token.wait(seconds):
        raise Cancelled(token.reason)
