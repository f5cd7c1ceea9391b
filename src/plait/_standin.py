"""Whose task runs here, when a batch runs in the consumer's own thread (inline).

A batch run inline makes the consumer's thread stand in for the inline worker: while one of
its items runs, ``plait.worker_state()`` is that worker's and ``plait.cancelled()`` asks the
map's token. Around it, the thread is its own again: the consumer may itself be a task of
another pool, with its own state and token, and they must come back unchanged.

A batch run at once holds its place while its frame runs. A batch run lazily (a generator that
runs each item as the consumer takes its result) is in place only while the generator runs:
between two items the consumer's own code runs, as itself, and the consumer may hand the
iterator to another thread, which then runs the next items. Setting thread-locals around every
item would cost more than a tiny item, so each batch registers the frame that runs its items
(the generator's own), once, and the lookup walks the caller's stack to the innermost
registered frame: the stack says which batch, if any, this code runs in, in whatever thread.

A leaf: ``_worker_spec`` and ``_cancel`` ask it; nothing of plait is imported here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any


class StandIn:
    """The worker a batch's items stand in for: its state, and the task's token. A lazy
    batch's state is asked for as an item asks (``of_thread``): the consumer may hand the
    iterator to another thread between two items, and that thread is a worker of its own."""

    __slots__ = ("_of_thread", "_state", "token")

    def __init__(
        self,
        state: dict[str, Any] | None,
        token: Any,
        of_thread: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._state = state
        self._of_thread = of_thread
        self.token = token  # the task's CancelToken (or None): not imported, to keep a leaf

    @property
    def state(self) -> dict[str, Any]:
        if self._of_thread is not None:
            return self._of_thread()
        assert self._state is not None
        return self._state


# id(frame) -> its stand-in, for the frames running inline batches now (any thread's). By id,
# not by the frame: a frame kept here would keep a dropped lazy batch alive, never closed (and
# a frame's id cannot be reused while it is here: it leaves before the frame can go).
_frames: dict[int, StandIn] = {}


def current() -> StandIn | None:
    """The stand-in whose item runs now, in this thread: the innermost on its stack."""
    if not _frames:
        return None
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        standin = _frames.get(id(frame))
        if standin is not None:
            return standin
        frame = frame.f_back
    return None


def enter(frame: int, standin: StandIn) -> None:
    """Items run by the frame whose id is ``frame`` (and whatever it calls) stand in for
    ``standin``'s worker. (A generator that keeps its own frame object in a variable resumes
    a fifth slower: it keeps the id.)"""
    _frames[frame] = standin


def leave(frame: int) -> None:
    _frames.pop(frame, None)


@contextmanager
def standing_in(state: dict[str, Any], token: Any) -> Iterator[None]:
    """The block's items (run by the frame that entered it) stand in for the worker whose
    state is ``state``."""
    frame = id(sys._getframe(2))  # (1: contextmanager's __enter__; 2: the one with the block)
    enter(frame, StandIn(state, token))
    try:
        yield
    finally:
        leave(frame)
